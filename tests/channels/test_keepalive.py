"""The adapters' default transport: per-thread keep-alive connections over a real server."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from channels.httpchannel import default_client
from channels.keepalive import KeepAliveTransport


class Counting:
    """A loopback server counting TCP connections; ``close_idle`` hangs up after each answer
    without saying so (as a provider's load balancer does to idle keep-alive connections)."""

    def __init__(self, close_idle: bool = False, gzip_body: bool = False) -> None:
        self.connections = 0
        counter = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                counter.connections += 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                data = json.dumps({"echo": json.loads(body)}).encode()
                if gzip_body:
                    data = gzip.compress(data)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                if gzip_body:
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                self.wfile.flush()
                if close_idle:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/x"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def keepalive() -> Iterator[httpx.Client]:
    with httpx.Client(transport=KeepAliveTransport(), timeout=2.0) as client:
        yield client


def test_one_connection_per_thread_is_reused(keepalive: httpx.Client) -> None:
    server = Counting()
    try:
        for n in range(5):
            assert keepalive.post(server.url, json={"n": n}).json() == {"echo": {"n": n}}
        assert server.connections == 1

        def other() -> None:
            keepalive.post(server.url, json={"n": "thread"}).raise_for_status()

        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
        assert server.connections == 2
    finally:
        server.close()


def test_a_connection_the_server_closed_is_replaced_before_use(keepalive: httpx.Client) -> None:
    server = Counting(close_idle=True)
    try:
        for n in range(3):
            assert keepalive.post(server.url, json={"n": n}).json() == {"echo": {"n": n}}
            time.sleep(0.1)  # idle: the server's hang-up arrives
        assert server.connections == 3
    finally:
        server.close()


def test_compressed_answers_are_decoded(keepalive: httpx.Client) -> None:
    server = Counting(gzip_body=True)
    try:
        assert keepalive.post(server.url, json={"a": 1}).json() == {"echo": {"a": 1}}
    finally:
        server.close()


def test_failures_map_to_httpx_errors(keepalive: httpx.Client) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(httpx.ConnectError):
        keepalive.post(f"http://127.0.0.1:{port}/x", json={})

    with socket.socket() as listener:  # accepts, reads, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/x"
        with pytest.raises(httpx.ReadTimeout):
            keepalive.post(url, json={}, timeout=httpx.Timeout(0.3))


def test_default_client_uses_it_unless_a_proxy_is_configured(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    with default_client() as client:
        assert isinstance(client._transport, KeepAliveTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    with default_client() as client:
        assert not isinstance(client._transport, KeepAliveTransport)
