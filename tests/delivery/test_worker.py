"""Actors on a real Redis broker with a Dramatiq worker: retries, dead letters, duplicates."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import dramatiq
import pytest
import redis
from sqlalchemy.orm import Session

from automation.core.config import Settings, get_settings
from automation.core.models import Message
from automation.runtime.broker import configure_broker
from tests.delivery.helpers import Loopback, contact, message


@pytest.fixture
def redis_worker(
    dsettings: Settings, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[dramatiq.Broker, Settings]]:
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("DELIVERY_MIN_BACKOFF_MS", "50")
    monkeypatch.setenv("DELIVERY_MAX_ATTEMPTS", "3")
    get_settings.cache_clear()
    settings = get_settings()
    redis.Redis.from_url(redis_url).flushdb()
    import automation.runtime.send_actors  # noqa: F401  declare the actors

    broker = configure_broker(settings)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    yield broker, settings
    worker.stop()
    broker.close()
    monkeypatch.delenv("REDIS_URL")
    get_settings.cache_clear()
    configure_broker(get_settings())


def _wait(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _status(settings: Settings, mid: int) -> str:
    from automation.core.db import session_scope

    with session_scope(settings) as s:
        row = s.get(Message, mid)
        assert row is not None
        return row.status


@pytest.mark.parametrize("backend", ["postgres"], indirect=False)
def test_transient_retried_then_failed_into_dead_letter_queue(
    session: Session, redis_worker: tuple[dramatiq.Broker, Settings], zns_server: Loopback,
    redis_url: str,
) -> None:
    _, settings = redis_worker
    c = contact(session)
    m = message(session, c, "zalo_zns", purpose="transactional")
    session.commit()
    zns_server.scripted.extend([(200, {"error": -100, "message": "busy"})] * 3)
    from automation.runtime.dispatch import enqueue_messages

    assert enqueue_messages(session, [m.id]) == 1
    _wait(lambda: _status(settings, m.id) == "failed")
    client = redis.Redis.from_url(redis_url)
    _wait(lambda: client.zcard("dramatiq:zalo.XQ") == 1)
    session.expire_all()
    row = session.get(Message, m.id)
    assert row is not None and row.attempts == 3 and len(zns_server.hits) == 3
    assert row.error is not None and "gave up after 3 attempts" in row.error


@pytest.mark.parametrize("backend", ["postgres"], indirect=False)
def test_retry_then_success_and_duplicate_actor_message_sends_once(
    session: Session, redis_worker: tuple[dramatiq.Broker, Settings], zns_server: Loopback,
) -> None:
    _, settings = redis_worker
    c = contact(session)
    m = message(session, c, "zalo_zns", purpose="transactional")
    session.commit()
    zns_server.scripted.append((503, {"error": -100}))  # quick retries inside the adapter...
    zns_server.scripted.append((503, {"error": -100}))
    zns_server.scripted.append((503, {"error": -100}))  # ...then a Dramatiq retry
    from automation.runtime.send_actors import send_zalo

    send_zalo.send([m.id])
    send_zalo.send([m.id])  # the same work delivered twice
    _wait(lambda: _status(settings, m.id) == "sent")
    time.sleep(0.3)
    assert len([h for h in zns_server.hits if h.body.get("tracking_id") == str(m.id)]) == 4
    session.expire_all()
    row = session.get(Message, m.id)
    assert row is not None and row.attempts == 2
