"""Real loopback servers for the channel adapter tests.

* ``http_server``: a threaded HTTP server on 127.0.0.1 (port 0) that records
  each request and answers from a scripted queue (status, JSON, headers,
  delay, or dropping the connection without an answer).
* ``smtp_server``: a real aiosmtpd server on a free port whose handler records
  envelopes and connections and can refuse (or hang up on) chosen recipients.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from aiosmtpd.controller import Controller

from channels.keepalive import KeepAliveTransport
from channels.leanclient import LeanClient
from channels.retry import RetryPolicy

# The delivery fixtures (settings with loopback providers), for worker tests of adapters.
from tests.delivery.conftest import dsettings, esms_server, smtp_sink, zns_server  # noqa: F401


@dataclass
class Reply:
    """One scripted HTTP answer."""

    status: int = 200
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: bool = False
    hang_up: bool = False  # answer, then close the connection without saying so
    raw: bytes | None = None  # the body as sent, instead of ``json``


@dataclass
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


class ScriptedServer:
    """Answers requests from a queue of :class:`Reply`; 599 when the queue is empty."""

    def __init__(self) -> None:
        self.replies: deque[Reply] = deque()
        self.requests: list[Recorded] = []
        self.connections = 0
        self._lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    def reply(self, *replies: Reply) -> None:
        with self._lock:
            self.replies.extend(replies)

    def _next(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            return self.replies.popleft() if self.replies else Reply(599, {"unscripted": True})

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with server._lock:
                    server.connections += 1

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                parts = urlsplit(self.path)
                recorded = Recorded(
                    self.command,
                    parts.path,
                    {k: v[0] for k, v in parse_qs(parts.query).items()},
                    {k.lower(): v for k, v in self.headers.items()},
                    self.rfile.read(length),
                )
                reply = server._next(recorded)
                time.sleep(reply.delay)
                if reply.drop:
                    self.close_connection = True
                    return
                body = reply.raw if reply.raw is not None else json.dumps(reply.json).encode()
                self.close_connection = reply.hang_up
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def http_server() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    yield server
    server.close()


@pytest.fixture
def sleeps() -> list[float]:
    """Waits the retry policy asked for (recorded instead of slept)."""
    return []


@pytest.fixture
def policy(sleeps: list[float]) -> RetryPolicy:
    return RetryPolicy(attempts=3, base_wait=0.05, max_wait=2.5, sleep=sleeps.append)


@pytest.fixture(params=["httpcore", "keepalive", "lean"])
def client(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    """Clients on httpx's own transport, on the keep-alive transport, and the adapters'
    default (the lean client over that transport)."""
    timeout = httpx.Timeout(0.5, connect=0.5)
    if request.param == "lean":
        with LeanClient(timeout=timeout, headers={}) as lean:
            yield lean
        return
    transport = KeepAliveTransport() if request.param == "keepalive" else None
    with httpx.Client(timeout=timeout, transport=transport) as c:
        yield c


class SmtpRecorder:
    """aiosmtpd handler: records connections and envelopes, scripted RCPT replies."""

    def __init__(self) -> None:
        self.sessions: list[Any] = []
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        self.rcpt_replies: dict[str, str] = {}
        self.hang_up_on: set[str] = set()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        if not any(s is session for s in self.sessions):
            self.sessions.append(session)
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address in self.hang_up_on:
            server.transport.abort()
            return "421 bye"
        if address in self.rcpt_replies:
            return self.rcpt_replies[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpServer:
    handler: SmtpRecorder
    url: str
    port: int


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    handler = SmtpRecorder()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield SmtpServer(handler, f"smtp://127.0.0.1:{port}", port)
    controller.stop()
