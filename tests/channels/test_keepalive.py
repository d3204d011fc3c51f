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
from channels.leanclient import LeanClient
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
        assert isinstance(client, LeanClient)
        assert isinstance(client._transport, KeepAliveTransport)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.invalid:3128")
    with default_client() as client:
        assert not isinstance(client._transport, KeepAliveTransport)


def test_the_lean_path_sends_what_httpx_would(http_server: ScriptedServer) -> None:
    """Same method, path, query, body and headers (bar Host and ordering) as httpx.Client."""
    http_server.reply(*(Reply(200, {"n": n}) for n in range(2)))
    url = f"{http_server.url}/message/template?x=1"
    body = {"phone": "84912345678", "template_data": {"tên": "Lan"}, "tracking_id": "7"}
    headers = {"User-Agent": "ua/1"}
    with httpx.Client(headers=headers, transport=KeepAliveTransport()) as plain:
        assert plain.post(url, json=body, headers={"access_token": "t"}).json() == {"n": 0}
    with LeanClient(timeout=2.0, headers=headers) as lean:
        answer = lean.post(url, json=body, headers={"Access_Token": "t"})
    assert answer.json() == {"n": 1} and answer.is_closed and answer.is_stream_consumed
    assert answer.request.url == url and answer.request.content == answer.request.read()
    one, two = http_server.requests
    assert (one.method, one.path, one.query) == (two.method, two.path, two.query)
    assert (one.body, one.headers) == (two.body, two.headers)


def test_the_lean_path_keeps_timeouts_and_error_mapping(http_server: ScriptedServer) -> None:
    with LeanClient(timeout=2.0, headers={}) as lean:
        with pytest.raises(httpx.ConnectError):
            lean.post(f"http://127.0.0.1:{free_port()}/x", json={})
        http_server.reply(Reply(200, {}, delay=0.5))
        with pytest.raises(httpx.ReadTimeout) as caught:
            lean.post(http_server.url, json={}, timeout=0.2)
        assert caught.value.request.url == http_server.url


def test_requests_the_lean_path_does_not_handle_take_httpx_s(
    http_server: ScriptedServer,
) -> None:
    http_server.reply(Reply(200, {"a": 1}), Reply(200, {"b": 2}))
    with LeanClient(timeout=2.0, headers={}) as lean:
        assert lean.post(http_server.url, data={"To": "+84"}, auth=("sid", "tok")).json() == {
            "a": 1
        }
        lean.cookies.set("s", "1")
        assert lean.post(http_server.url, json={}).json() == {"b": 2}
    form, cookied = http_server.requests
    assert form.form() == {"To": "+84"} and form.headers["authorization"].startswith("Basic ")
    assert cookied.headers["cookie"] == "s=1"
