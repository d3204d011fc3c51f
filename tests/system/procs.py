"""System-test helpers: `mactl` as OS processes, loopback providers, polling.

Everything here talks to the product only through its entry points
(``python -m admin_cli.main ...``), HTTP and the database, never by importing
the code under test into the test process' runtime.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
from aiosmtpd.controller import Controller

from tests.loopback import Hit, read_hit

REPO = Path(__file__).resolve().parents[2]
MACTL = [sys.executable, "-m", "admin_cli.main"]
#: Secrets every system-test process gets (webhooks and provider callbacks are signed).
SECRETS = {
    "SECRET_KEY": "system-test-secret-key-0123456789abcdef",
    "SHOPIFY_WEBHOOK_SECRET": "shopify-system-secret",
    "EVENTS_WEBHOOK_SECRET": "events-system-secret",
    "ZALO_APP_ID": "2074138120372622546",
    "ZALO_OA_SECRET": "zalo-oa-system-secret",
    "MAILGUN_SIGNING_KEY": "mailgun-system-key",
}


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_env(**values: str) -> dict[str, str]:
    """A minimal, explicit environment for a `mactl` process (nothing inherited by accident)."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
    }
    env.update(values)
    return env


def mactl(
    *args: str, env: dict[str, str], cwd: Path, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    """Run one `mactl` command to completion and return its result (text output)."""
    return subprocess.run(
        [*MACTL, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def mactl_ok(*args: str, env: dict[str, str], cwd: Path, timeout: float = 60.0) -> str:
    """Run `mactl`, assert it exited 0, return stdout."""
    result = mactl(*args, env=env, cwd=cwd, timeout=timeout)
    assert result.returncode == 0, (
        f"mactl {' '.join(args)} exited {result.returncode}\n"
        f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    )
    return result.stdout


@dataclass
class Proc:
    """A long-running `mactl` process in its own process group, output in a log file."""

    name: str
    args: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        """Start the process (new session: its children can be signalled together)."""
        handle = self.log.open("ab")
        self.popen = subprocess.Popen(
            [*MACTL, *self.args],
            env=self.env,
            cwd=self.cwd,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        handle.close()
        return self

    @property
    def alive(self) -> bool:
        """True while the process has not exited."""
        return self.popen is not None and self.popen.poll() is None

    def output(self) -> str:
        """Everything the process wrote so far."""
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.popen is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)

    def kill9(self) -> None:
        """SIGKILL the whole process group (the process and the workers it forked)."""
        if self.popen is None:
            return
        self._signal_group(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM the group, wait, then SIGKILL what is left; returns the exit code."""
        if self.popen is None:
            return None
        if self.popen.poll() is None:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=timeout)
        # Forked children may outlive their parent: clean up the group either way.
        self._signal_group(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        return self.popen.returncode


def wait_for(
    check: Callable[[], Any], timeout: float, what: str, procs: tuple[Proc, ...] = ()
) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` (with logs)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        for proc in procs:
            if not proc.alive:
                raise AssertionError(f"{proc.name} exited while waiting for {what}:\n"
                                     f"{proc.output()[-4000:]}")
        time.sleep(0.1)
    logs = "\n".join(f"--- {p.name} ---\n{p.output()[-4000:]}" for p in procs)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last={last!r})\n"
                         f"{logs}")


def wait_http_ok(url: str, proc: Proc, timeout: float = 30.0) -> None:
    """Wait until GET ``url`` answers 200 (the server is up and healthy)."""

    def ok() -> bool:
        try:
            return httpx.get(url, timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(ok, timeout, f"{url} to answer 200", (proc,))


# --------------------------------------------------------------------------- signing


def shopify_headers(secret: str, body: bytes, topic: str, webhook_id: str) -> dict[str, str]:
    """Headers of a signed Shopify webhook delivery."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-Shopify-Hmac-Sha256": base64.b64encode(digest).decode(),
        "X-Shopify-Topic": topic,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Shop-Domain": "shop.example.vn",
    }


def native_headers(secret: str, body: bytes) -> dict[str, str]:
    """Headers of a signed native event request (timestamped HMAC)."""
    ts = str(int(time.time()))
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {"Content-Type": "application/json", "X-Timestamp": ts, "X-Signature": f"sha256={mac}"}


def now_iso() -> str:
    """The current time as ISO-8601 UTC (an event's occurred_at)."""
    return datetime.now(UTC).isoformat()


def lead_event(n: int, email: str, phone: str, first_name: str) -> dict[str, Any]:
    """A native lead.captured event for a Vietnamese contact who opted in to e-mail."""
    return {
        "id": f"lead-{n}",
        "type": "lead.captured",
        "occurred_at": now_iso(),
        "contact": {
            "email": email,
            "phone": phone,
            "first_name": first_name,
            "last_name": "Nguyễn",
            "consent": {"email": {"marketing": True}, "zalo": {"marketing": True}},
        },
        "properties": {"form": "popup-trang-chu", "coupon_code": f"CHAO{n}"},
    }


def order_event(n: int, email: str, phone: str, first_name: str) -> dict[str, Any]:
    """A native order.created event (transactional order_status sequence)."""
    return {
        "id": f"order-created-{n}",
        "type": "order.created",
        "occurred_at": now_iso(),
        "contact": {"email": email, "phone": phone, "first_name": first_name},
        "properties": {
            "order_id": f"9{n:03d}",
            "order_number": f"#9{n:03d}",
            "total": 1_250_000 + n,
            "currency": "VND",
            "items": [{"sku": "AO-1", "name": "Áo dài lụa", "quantity": 1, "price": 1_250_000}],
        },
    }


# --------------------------------------------------------------------------- loopbacks


@dataclass
class LoopbackProvider:
    """A threaded JSON HTTP server standing in for Zalo ZNS or eSMS."""

    kind: str  # "zns" | "esms"
    delay: float = 0.0
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        server = self
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                hit = read_hit(self)
                body = hit.body
                with lock:
                    server.hits.append(hit)
                time.sleep(server.delay)
                data = json.dumps(server.answer(body)).encode()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                    hit.answered = True
                except OSError:  # the client was killed mid-request
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        """The provider's success answer for this request."""
        if self.kind == "zns":
            return {
                "error": 0,
                "message": "Success",
                "data": {"msg_id": f"zns-{body.get('tracking_id')}",
                         "sent_time": str(int(time.time() * 1000))},
            }
        return {"CodeResult": "100", "SMSID": f"sms-{body.get('RequestId')}"}

    def key(self, hit: Hit) -> str:
        """The request's idempotency key (ZNS tracking_id / eSMS RequestId = outbox row id)."""
        return str(hit.body.get("tracking_id" if self.kind == "zns" else "RequestId"))

    def key_counts(self) -> Counter[str]:
        """Requests per idempotency key."""
        return Counter(self.key(h) for h in list(self.hits))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SmtpRecorder:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def parsed(self) -> list[Any]:
        """The accepted messages as email.message.EmailMessage objects."""
        from email import message_from_bytes, policy

        with self.lock:
            return [message_from_bytes(raw, policy=policy.default) for _, _, raw in self.messages]


@dataclass
class SmtpServer:
    """A running aiosmtpd server and what it received."""

    recorder: SmtpRecorder
    url: str
    controller: Controller

    def close(self) -> None:
        self.controller.stop()


def start_smtp() -> SmtpServer:
    """Start an aiosmtpd server on a free loopback port."""
    recorder = SmtpRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    return SmtpServer(recorder, f"smtp://127.0.0.1:{port}", controller)


@dataclass
class Providers:
    """The loopback providers every channel points at."""

    zns: LoopbackProvider
    esms: LoopbackProvider
    smtp: SmtpServer

    def env(self) -> dict[str, str]:
        """Channel settings pointing each channel at its loopback server."""
        return {
            "ZALO_ACCESS_TOKEN": "zalo-system-token",
            "ZALO_ZNS_API_BASE": self.zns.url,
            "ESMS_API_KEY": "esms-key",
            "ESMS_SECRET_KEY": "esms-secret",
            "ESMS_BRANDNAME": "SHOPVN",
            "ESMS_API_BASE": self.esms.url,
            "SMTP_URL": self.smtp.url,
            "EMAIL_FROM": "Cửa hàng Lụa <no-reply@shop.example.vn>",
            "SHOP_NAME": "Lụa Hà Đông",
            "PROVIDER_RATE_LIMITS": '{"esms": 0, "zalo_zns": 0, "smtp": 0}',
        }


# --------------------------------------------------------------------------- faults


@dataclass
class Faults:
    """Shares of requests a faulty provider answers badly (drawn per request, seeded).

    ``error`` -> HTTP 500 (SMTP 451), ``throttle`` -> 429 with Retry-After: 1,
    ``timeout`` -> no answer for ``hang`` seconds then a dropped connection, ``drop`` ->
    the connection is closed without an answer. None of them accepts the message.
    ``reject`` is the share of rows (by key) the provider refuses for good.
    """

    error: float = 0.0
    throttle: float = 0.0
    timeout: float = 0.0
    drop: float = 0.0
    reject: float = 0.0
    hang: float = 16.0
    seed: int = 11

    def draw(self, rng: Any) -> str:
        """The fault for one request ("" = answer normally)."""
        roll = rng.random()
        for name in ("error", "throttle", "timeout", "drop"):
            share = float(getattr(self, name))
            if roll < share:
                return name
            roll -= share
        return ""

    def rejects(self, key: str) -> bool:
        """True when the row with this key is refused for good (same answer every time)."""
        digest = hashlib.sha256(f"{self.seed}:{key}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32 < self.reject


#: Success and permanent-refusal answers per provider kind, and the request's row key.
KINDS: dict[str, dict[str, Any]] = {
    "zns": {
        "key": lambda b: str(b.get("tracking_id")),
        "ok": lambda b: {"error": 0, "message": "Success",
                         "data": {"msg_id": f"zns-{b.get('tracking_id')}", "sent_time": "0"}},
        "reject": {"error": -108, "message": "Phone number is invalid"},
        "to": lambda b: str(b.get("phone")),
    },
    "esms": {
        "key": lambda b: str(b.get("RequestId")),
        "ok": lambda b: {"CodeResult": "100", "SMSID": f"sms-{b.get('RequestId')}"},
        "reject": {"CodeResult": "108", "ErrorMessage": "Phone number format invalid"},
        "to": lambda b: str(b.get("Phone")),
    },
    "messenger": {
        "key": lambda b: str((b.get("recipient") or {}).get("id")),
        "ok": lambda b: {"recipient_id": (b.get("recipient") or {}).get("id"),
                         "message_id": f"m_{time.monotonic_ns()}"},
        "reject": {"error": {"code": 551, "message": "This person isn't available right now"}},
        "to": lambda b: str((b.get("recipient") or {}).get("id")),
    },
}


@dataclass
class FaultyProvider:
    """A loopback JSON provider (ZNS, eSMS or Messenger Send API) that misbehaves on purpose.

    Every request is recorded (``hits``) before it is answered; ``accepted`` lists, per
    recipient, the keys of requests answered with success (an eSMS RequestId accepted
    before is answered 124 "duplicate", as eSMS does, and not delivered again).
    """

    kind: str
    faults: Faults = field(default_factory=Faults)
    delay: float = 0.0
    hits: list[Hit] = field(default_factory=list)
    accepted: dict[str, list[str]] = field(default_factory=dict)
    fault_counts: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        import random

        server, spec, lock = self, KINDS[self.kind], threading.Lock()
        rng = random.Random(self.faults.seed)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                hit = read_hit(self)
                body = hit.body
                with lock:
                    server.hits.append(hit)
                    fault = server.faults.draw(rng)
                    server.fault_counts[fault or "ok"] += 1
                time.sleep(server.delay)
                if fault in ("timeout", "drop"):
                    if fault == "timeout":
                        time.sleep(server.faults.hang)
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                with lock:  # a duplicate check and its record are one step
                    status, payload, headers = server.answer(spec, body, fault)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    self.wfile.flush()
                except OSError:  # the client was killed mid-request: not delivered
                    return
                hit.answered = True
                if server.is_success(payload):
                    with lock:
                        server.accepted.setdefault(spec["to"](body), []).append(spec["key"](body))

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def answer(
        self, spec: dict[str, Any], body: dict[str, Any], fault: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, headers) for one request that gets an answer."""
        if fault == "error":
            return 500, {"error": "internal"}, {}
        if fault == "throttle":
            return 429, {"error": "slow down"}, {"Retry-After": "1"}
        key = spec["key"](body)
        if self.faults.rejects(spec["to"](body)):
            return (400 if self.kind == "messenger" else 200), spec["reject"], {}
        if self.kind == "esms" and key in self.accepted.get(spec["to"](body), []):
            self.fault_counts["deduped"] += 1
            return 200, {"CodeResult": "124", "ErrorMessage": "Duplicate RequestId"}, {}
        return 200, spec["ok"](body), {}

    @staticmethod
    def is_success(payload: dict[str, Any]) -> bool:
        """True for a success answer of any kind (not a refusal, not a duplicate)."""
        return payload.get("error") == 0 or payload.get("CodeResult") == "100" or (
            "message_id" in payload)

    def in_flight(self) -> set[str]:
        """Recipients of requests received and not answered yet."""
        spec = KINDS[self.kind]
        return {spec["to"](h.body) for h in list(self.hits) if not h.answered}

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class FaultySmtp:
    """aiosmtpd handler answering 451 for a share of messages, 550 for rejected rows.

    ``accepted`` lists, per recipient, the Message-IDs of messages answered 250.
    """

    def __init__(self, faults: Faults) -> None:
        import random

        self.faults, self.rng, self.lock = faults, random.Random(faults.seed), threading.Lock()
        self.accepted: dict[str, list[str]] = {}
        self.fault_counts: Counter[str] = Counter()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        from email import message_from_bytes, policy

        to = envelope.rcpt_tos[0]
        with self.lock:
            fault = self.faults.draw(self.rng)
            self.fault_counts[fault or "ok"] += 1
        if fault:
            return "451 4.3.0 Temporary failure, try again"
        if self.faults.rejects(to):
            return "550 5.1.1 No such user"
        mid = str(message_from_bytes(envelope.content, policy=policy.default)["Message-ID"])
        with self.lock:
            self.accepted.setdefault(to, []).append(mid)
        return "250 OK"


def start_faulty_smtp(faults: Faults) -> tuple[FaultySmtp, str, Controller]:
    """Start a faulty aiosmtpd server; returns (handler, smtp:// URL, controller)."""
    handler, port = FaultySmtp(faults), free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    return handler, f"smtp://127.0.0.1:{port}", controller


class TcpProxy:
    """A TCP proxy in front of a server (PostgreSQL, Redis) that can refuse for a while.

    ``outage(seconds)`` cuts every open connection and answers new ones by closing them
    at once until the time is up; the server behind it is never touched.
    """

    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.down_until = 0.0
        self.lock = threading.Lock()
        self.conns: set[socket.socket] = set()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = int(self.listener.getsockname()[1])
        self.refused = 0
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, url: str) -> str:
        """``url`` with its host:port replaced by the proxy's."""
        scheme, rest = url.split("://", 1)
        creds, _, hostpath = rest.rpartition("@")
        path = hostpath.split("/", 1)[1] if "/" in hostpath else ""
        return f"{scheme}://{creds + '@' if creds else ''}127.0.0.1:{self.port}/{path}"

    def outage(self, seconds: float) -> None:
        """Drop every open connection and refuse new ones for ``seconds``."""
        self.down_until = time.monotonic() + seconds
        with self.lock:
            conns, self.conns = set(self.conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self.down_until:
                self.refused += 1
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self.lock:
                self.conns |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self.lock:
            self.conns.discard(src)
            self.conns.discard(dst)

    def close(self) -> None:
        """Stop accepting and cut every connection."""
        self.closed = True
        self.outage(0)
        self.listener.close()
