"""Quick retries over a real loopback HTTP server."""

from __future__ import annotations

import time
from email.utils import formatdate

import httpx
import pytest

from channels.errors import TransientError
from channels.retry import RetryPolicy, request_with_retry, retry_after_seconds
from tests.channels.conftest import Reply, ScriptedServer, free_port


def post(server_url: str, client: httpx.Client, policy: RetryPolicy, **kw: bool) -> httpx.Response:
    return request_with_retry(client, "POST", server_url + "/x", policy=policy, json={}, **kw)


def test_5xx_then_success_backs_off(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy, sleeps: list[float]
) -> None:
    http_server.reply(Reply(503), Reply(502), Reply(200, {"ok": 1}))
    assert post(http_server.url, client, policy).json() == {"ok": 1}
    assert sleeps == [0.05, 0.1]
    assert len(http_server.requests) == 3


def test_retry_after_is_honoured(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy, sleeps: list[float]
) -> None:
    http_server.reply(Reply(429, {}, {"Retry-After": "1"}), Reply(200, {"ok": 1}))
    assert post(http_server.url, client, policy).status_code == 200
    assert sleeps == [1.0]


def test_long_retry_after_goes_to_the_outer_retry(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy, sleeps: list[float]
) -> None:
    http_server.reply(Reply(429, {}, {"Retry-After": "120"}))
    with pytest.raises(TransientError) as info:
        post(http_server.url, client, policy)
    assert info.value.retry_after == 120.0
    assert sleeps == [] and len(http_server.requests) == 1


def test_gives_up_after_three_attempts(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(500), Reply(500), Reply(500), Reply(200))
    with pytest.raises(TransientError, match="HTTP 500"):
        post(http_server.url, client, policy)
    assert len(http_server.requests) == 3


def test_connection_refused_is_retried_then_transient(
    client: httpx.Client, policy: RetryPolicy, sleeps: list[float]
) -> None:
    with pytest.raises(TransientError, match="cannot connect"):
        post(f"http://127.0.0.1:{free_port()}", client, policy)
    assert len(sleeps) == 2


def test_slow_reply_is_not_retried_unless_idempotent(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(200, {}, delay=0.8))
    with pytest.raises(TransientError, match="may have been delivered"):
        post(http_server.url, client, policy)
    assert len(http_server.requests) == 1

    http_server.reply(Reply(200, {}, delay=0.8), Reply(200, {"second": True}))
    assert post(http_server.url, client, policy, idempotent=True).json() == {"second": True}
    assert len(http_server.requests) == 3


def test_dropped_connection_is_ambiguous(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(drop=True), Reply(200))
    with pytest.raises(TransientError, match="may have been delivered"):
        post(http_server.url, client, policy)
    assert len(http_server.requests) == 1


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("soon") is None
    later = retry_after_seconds(formatdate(time.time() + 30, usegmt=True))
    assert later is not None and 25 <= later <= 31
