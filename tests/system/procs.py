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
class Hit:
    """One request a loopback provider received (recorded before it answers)."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    answered: bool = False
    received_at: float = field(default_factory=time.monotonic)


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
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = {"raw": raw.decode(errors="replace")}
                hit = Hit(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
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
