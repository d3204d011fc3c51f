"""The adapters' default transport: per-thread keep-alive connections over a real server."""

from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from channels.httpchannel import default_client
from channels.keepalive import KeepAliveTransport
from tests.channels.conftest import Reply, ScriptedServer, free_port


@pytest.fixture
def keepalive() -> Iterator[httpx.Client]:
    with httpx.Client(transport=KeepAliveTransport(), timeout=2.0) as client:
        yield client


def test_one_connection_per_thread_is_reused(
    http_server: ScriptedServer, keepalive: httpx.Client
) -> None:
    http_server.reply(*(Reply(200, {"n": n}) for n in range(6)))
    for n in range(5):
        assert keepalive.post(http_server.url, json={}).json() == {"n": n}
    assert http_server.connections == 1

    thread = threading.Thread(target=lambda: keepalive.post(http_server.url, json={}))
    thread.start()
    thread.join()
    assert http_server.connections == 2


def test_a_connection_the_server_closed_is_replaced_before_use(
    http_server: ScriptedServer, keepalive: httpx.Client
) -> None:
    http_server.reply(*(Reply(200, {"n": n}, hang_up=True) for n in range(3)))
    for n in range(3):
        assert keepalive.post(http_server.url, json={}).json() == {"n": n}
        time.sleep(0.1)  # idle: the server's hang-up arrives
    assert http_server.connections == 3


def test_compressed_answers_are_decoded(
    http_server: ScriptedServer, keepalive: httpx.Client
) -> None:
    packed = gzip.compress(json.dumps({"a": 1}).encode())
    http_server.reply(Reply(200, raw=packed, headers={"Content-Encoding": "gzip"}))
    assert keepalive.post(http_server.url, json={}).json() == {"a": 1}


def test_failures_map_to_httpx_errors(keepalive: httpx.Client) -> None:
    with pytest.raises(httpx.ConnectError):
        keepalive.post(f"http://127.0.0.1:{free_port()}/x", json={})

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
