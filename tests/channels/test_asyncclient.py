"""The event-loop client and the async send path (retries, Zalo) over real loopback servers."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from channels.asyncclient import AsyncLeanClient
from channels.errors import PermanentError, QuotaExhausted, TransientError
from channels.leanclient import LeanClient
from channels.retry import RetryPolicy, arequest_with_retry
from channels.zalo import ZaloZnsChannel
from channels.zalo_token import StaticToken
from tests.channels.conftest import Reply, ScriptedServer, free_port
from tests.channels.test_zalo import OK, ZNS, refresher


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def aclient() -> AsyncLeanClient:
    return AsyncLeanClient(timeout=httpx.Timeout(2.0), headers={"User-Agent": "ua/1"})


def test_sends_what_the_lean_client_sends(
    http_server: ScriptedServer, aclient: AsyncLeanClient
) -> None:
    http_server.reply(*(Reply(200, {"n": n}) for n in range(2)))
    url = f"{http_server.url}/message/template?x=1"
    body = {"phone": "84912345678", "template_data": {"tên": "Lan"}, "tracking_id": "7"}
    with LeanClient(timeout=2.0, headers={"User-Agent": "ua/1"}) as lean:
        assert lean.post(url, json=body, headers={"access_token": "t"}).json() == {"n": 0}
    answer = run(aclient.request("POST", url, json=body, headers={"Access_Token": "t"}))
    assert answer.status_code == 200 and answer.json() == {"n": 1}
    assert answer.request.url == url and answer.is_closed
    one, two = http_server.requests
    assert (one.method, one.path, one.query, one.body) == (
        two.method,
        two.path,
        two.query,
        two.body,
    )
    assert one.headers == two.headers


def test_connections_are_kept_alive_and_one_per_call_in_flight(
    http_server: ScriptedServer, aclient: AsyncLeanClient
) -> None:
    http_server.reply(*(Reply(200, {"n": n}, delay=0.05) for n in range(12)))

    async def calls() -> None:
        for _ in range(4):
            await aclient.request("POST", http_server.url, json={})
        assert http_server.connections == 1
        await asyncio.gather(*(aclient.request("POST", http_server.url, json={}) for _ in range(4)))
        assert http_server.connections == 4
        await asyncio.gather(*(aclient.request("POST", http_server.url, json={}) for _ in range(4)))
        assert http_server.connections == 4

    run(calls())


def test_a_connection_the_server_closed_is_replaced_before_use(
    http_server: ScriptedServer, aclient: AsyncLeanClient
) -> None:
    http_server.reply(*(Reply(200, {"n": n}, hang_up=True) for n in range(3)))

    async def calls() -> list[Any]:
        answers = []
        for _ in range(3):
            answers.append((await aclient.request("POST", http_server.url, json={})).json())
            await asyncio.sleep(0.1)  # idle: the server's hang-up arrives
        return answers

    assert run(calls()) == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert http_server.connections == 3


def test_compressed_answers_are_decoded(
    http_server: ScriptedServer, aclient: AsyncLeanClient
) -> None:
    packed = gzip.compress(json.dumps({"a": 1}).encode())
    http_server.reply(Reply(200, raw=packed, headers={"Content-Encoding": "gzip"}))
    assert run(aclient.request("POST", http_server.url, json={})).json() == {"a": 1}


@pytest.fixture
def raw_server() -> Iterator[tuple[str, list[bytes]]]:
    """Answers each connection's first request with the next scripted raw bytes, then closes."""
    answers: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                if answers:
                    conn.sendall(answers.pop(0))

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/x", answers
    listener.close()


def test_chunked_and_close_delimited_answers(
    raw_server: tuple[str, list[bytes]], aclient: AsyncLeanClient
) -> None:
    url, answers = raw_server
    answers.append(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
        b'4\r\n{"a"\r\n3;x=1\r\n: 1\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n'
    )
    answers.append(b'HTTP/1.0 201 Created\r\nContent-Type: application/json\r\n\r\n{"b": 2}')
    assert run(aclient.request("POST", url, json={})).json() == {"a": 1}
    second = run(aclient.request("POST", url, json={}))
    assert (second.status_code, second.json()) == (201, {"b": 2})


def test_informational_answers_are_skipped(
    raw_server: tuple[str, list[bytes]], aclient: AsyncLeanClient
) -> None:
    url, answers = raw_server
    answers.append(
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b'HTTP/1.1 200 OK\r\nContent-Length: 8\r\nConnection: close\r\n\r\n{"c": 3}'
    )
    assert run(aclient.request("POST", url, json={})).json() == {"c": 3}


def test_a_request_with_a_line_break_is_never_written(
    http_server: ScriptedServer, aclient: AsyncLeanClient
) -> None:
    http_server.reply(Reply(200, {"n": 1}))
    with pytest.raises(httpx.LocalProtocolError):
        run(aclient.request("POST", http_server.url, json={}, headers={"x": "a\r\nInjected: 1"}))
    assert run(aclient.request("POST", http_server.url, json={})).json() == {"n": 1}
    assert len(http_server.requests) == 1 and "injected" not in http_server.requests[0].headers


async def _scripted(answers: list[bytes]) -> tuple[asyncio.Server, list[bytes], list[int]]:
    """A keep-alive loopback server on the running loop: each request (head and
    Content-Length body) gets the next answer; it records the heads and counts connections."""
    heads: list[bytes] = []
    connections = [0]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections[0] += 1
        while answers:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            heads.append(head)
            length = next(
                (int(line[15:]) for line in head.split(b"\r\n") if line[:15] == b"content-length:"),
                0,
            )
            await reader.readexactly(length)
            writer.write(answers.pop(0))
            await writer.drain()
        writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0), heads, connections


def test_sized_and_chunked_answers_keep_the_connection(aclient: AsyncLeanClient) -> None:
    async def calls() -> None:
        server, heads, connections = await _scripted(
            [
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                b'3\r\n{"a\r\n4\r\n": 1\r\n1\r\n}\r\n0\r\nX-Trailer: t\r\n\r\n',
                b"HTTP/1.1 204 No Content\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n{}",  # truncated
            ]
        )
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
        async with server:
            assert (await aclient.request("POST", url, json={})).json() == {}
            second = await aclient.request("POST", url, json={})
            assert second.json() == {"a": 1} and "x-trailer" not in second.headers
            third = await aclient.request("GET", url, headers={"Content-Length": "5"})
            assert (third.status_code, third.content) == (204, b"")
            with pytest.raises(httpx.RemoteProtocolError):
                await aclient.request("POST", url, content=b"abc", headers={"Content-Length": "9"})
        assert connections == [1]
        assert b"content-length: 5" not in heads[2] and b"content-length: 3\r\n" in heads[3]

    run(calls())


def test_bytes_after_an_answer_and_head_answers_close_the_connection(
    aclient: AsyncLeanClient,
) -> None:
    async def calls() -> None:
        server, _, connections = await _scripted(
            [
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}HTTP/1.1 200 OK\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}junk",
                b"HTTP/1.1 200 OK\r\nContent-Length: 40\r\n\r\n",
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
            ]
        )
        url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/x"
        async with server:
            for _ in range(2):
                assert (await aclient.request("POST", url, json={})).json() == {}
            head = await aclient.request("HEAD", url)
            assert head.headers["content-length"] == "40" and head.content == b""
            assert (await aclient.request("POST", url, json={})).json() == {}
        assert connections == [4]

    run(calls())


def test_a_truncated_or_garbled_answer_is_a_remote_protocol_error(
    raw_server: tuple[str, list[bytes]], aclient: AsyncLeanClient
) -> None:
    url, answers = raw_server
    answers.append(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{}")
    answers.append(b"HTTP/1.1 200 OK\r\nContent-Len")
    answers.append(b"SMTP ready\r\n\r\n")
    for _ in range(3):
        with pytest.raises(httpx.RemoteProtocolError):
            run(aclient.request("POST", url, json={}))


def test_a_header_name_that_is_not_a_token_is_refused(aclient: AsyncLeanClient) -> None:
    for name in ("a b", "x:y", "x\0"):
        with pytest.raises(httpx.LocalProtocolError):
            run(aclient.request("POST", "http://127.0.0.1:9/x", json={}, headers={name: "1"}))
    with pytest.raises(httpx.LocalProtocolError):
        run(aclient.request("POST", "http://127.0.0.1:9/x", json={}, headers={"x": "a\0b"}))


def test_failures_map_to_httpx_errors(
    http_server: ScriptedServer, aclient: AsyncLeanClient
) -> None:
    with pytest.raises(httpx.ConnectError):
        run(aclient.request("POST", f"http://127.0.0.1:{free_port()}/x", json={}))
    http_server.reply(Reply(200, {}, delay=0.5), Reply(200, {}, drop=True))
    with pytest.raises(httpx.ReadTimeout) as caught:
        run(aclient.request("POST", http_server.url, json={}, timeout=0.2))
    assert caught.value.request.url == http_server.url
    with pytest.raises(httpx.RemoteProtocolError):
        run(aclient.request("POST", http_server.url, json={}))
    with pytest.raises(TypeError, match="plain requests"):
        run(aclient.request("POST", http_server.url, data={"a": "1"}))


def test_async_retries_follow_the_policy(
    http_server: ScriptedServer, aclient: AsyncLeanClient, policy: RetryPolicy, sleeps: list[float]
) -> None:
    http_server.reply(
        Reply(503, {}, headers={"Retry-After": "1"}), Reply(502), Reply(200, {"a": 1})
    )
    answer = run(arequest_with_retry(aclient, "POST", http_server.url, policy=policy, json={}))
    assert answer.json() == {"a": 1} and sleeps == [1.0, 0.1]

    http_server.reply(Reply(200, {}, drop=True))  # may have been delivered: not retried
    with pytest.raises(TransientError, match="may have been delivered"):
        run(arequest_with_retry(aclient, "POST", http_server.url, policy=policy, json={}))
    assert len(http_server.requests) == 4


def zns_on_loop(url: str, policy: RetryPolicy, tokens: Any = None) -> ZaloZnsChannel:
    return ZaloZnsChannel(tokens or StaticToken("t"), api_base=url, policy=policy)


@pytest.mark.parametrize(
    ("code", "error"),
    [(-100, TransientError), (-115, QuotaExhausted), (-108, PermanentError),
     (-118, PermanentError)],
)  # fmt: skip
def test_zns_asend_maps_errors_like_send(
    code: int, error: type[Exception], http_server: ScriptedServer, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(200, {"error": code, "message": "nope"}), Reply(200, OK))
    channel = zns_on_loop(http_server.url, policy)
    send = channel.async_sender()
    assert send is not None
    with pytest.raises(error) as info:
        run(send(ZNS))
    assert type(info.value) is error and info.value.code == str(code)  # type: ignore[attr-defined]
    assert run(send(ZNS)).provider_message_id == "zmsg-1"
    assert http_server.requests[1].json() == {
        "phone": "84912345678",
        "template_id": "231677",
        "template_data": {"customer_name": "Nguyễn Văn An", "order_code": "DH001"},
        "tracking_id": "42",
    }
    channel.close()


def test_zns_asend_refreshes_a_rejected_token_once(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(
        Reply(200, {"error": -124, "message": "Access token is invalid"}),
        Reply(200, {"access_token": "A2", "refresh_token": "R2", "expires_in": "90000"}),
        Reply(200, OK),
        Reply(200, OK),
    )
    tokens, store = refresher(http_server, client, policy)
    channel = zns_on_loop(http_server.url, policy, tokens)
    assert run(channel.asend(ZNS)).provider_message_id == "zmsg-1"
    assert run(channel.asend(ZNS)).provider_message_id == "zmsg-1"
    first, refresh, retry, next_one = http_server.requests
    assert first.headers["access_token"] == "A1" and refresh.path == "/v4/oa/access_token"
    assert retry.headers["access_token"] == next_one.headers["access_token"] == "A2"
    assert store.value[:2] == ("A2", "R2") and store.saves == 1


def test_only_an_adapter_owning_its_client_sends_on_the_loop(policy: RetryPolicy) -> None:
    injected = ZaloZnsChannel(StaticToken("t"), client=httpx.Client(), policy=policy)
    assert injected.async_sender() is None
    assert zns_on_loop("http://127.0.0.1:9", policy).async_sender() is not None
