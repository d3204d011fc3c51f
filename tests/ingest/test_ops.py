"""Health, OpenAPI, metrics, concurrency races and the real Redis broker path."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.config import Settings, get_settings
from automation.core.db import dispose_all, session_factory
from automation.core.models import Contact, Event, Order
from automation.core.models_inbox import InboxDelivery
from automation.inbox.mapping import Delivery
from automation.inbox.record import Recorded, record
from automation.inbox.worker import map_and_commit
from automation.ingest.app import create_app
from tests.ingest.helpers import (
    counts,
    events_of,
    fixture_bytes,
    fixture_json,
    native_event,
    post_native,
    post_shop,
)


def test_healthz_ok_and_503_when_database_is_down(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "ok"}
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    dispose_all()
    down = client.get("/healthz")
    assert down.status_code == 503
    assert down.json()["status"] == "unavailable"
    assert down.json()["database"] == "down" and "nobody" not in down.text


def test_openapi_lists_endpoints_and_native_schema(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path in ("/webhooks/shopify", "/webhooks/haravan", "/webhooks/sapo",
                 "/webhooks/woocommerce", "/webhooks/events", "/healthz", "/metrics"):
        assert path in schema["paths"], path
    assert {"NativeEvent", "NativeBatch", "ContactIn"} <= set(schema["components"]["schemas"])
    params = {p["name"] for p in schema["paths"]["/webhooks/events"]["post"]["parameters"]}
    assert params == {"X-Signature", "X-Timestamp"}


def test_metrics_count_webhooks_by_source_and_outcome(client: TestClient) -> None:
    def value(outcome: str) -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith(f'webhooks_received_total{{outcome="{outcome}",source="shopify"}}'):
                return float(line.split()[-1])
        return 0.0

    before_ok, before_bad = value("accepted"), value("unauthorized")
    post_shop(client, fixture_bytes("shopify/orders_create.json"), "orders/create")
    post_shop(client, fixture_bytes("shopify/orders_create.json"), "orders/create", signature="x")
    assert value("accepted") == before_ok + 1
    assert value("unauthorized") == before_bad + 1
    assert "webhook_duration_seconds_bucket" in client.get("/metrics").text


def _race(threads: int, work: Callable[[int], object]) -> list[object]:
    """Run work(i) from several threads released at the same instant."""
    barrier = threading.Barrier(threads)
    results: list[object] = []
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            barrier.wait()
            results.append(work(index))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    return results


def test_two_identical_deliveries_racing_store_once(settings: Settings, session: Session) -> None:
    factory = session_factory(settings)

    def deliver(key: str) -> Recorded:
        db = factory()
        try:
            return record(db, [Delivery("shopify", "orders/create", key, b"{}")])
        finally:
            db.close()

    for round_ in range(5):
        results = [r for r in _race(4, lambda _i, k=f"race-{round_}": deliver(k))
                   if isinstance(r, Recorded)]
        assert sum(1 for r in results if r.new_ids) == 1
        assert len({r.ids[0] for r in results}) == 1
    assert counts(session)["inbox"] == 5


def test_concurrent_mappings_of_one_new_person_make_one_contact(
    client: TestClient, settings: Settings, session: Session
) -> None:
    order = fixture_json("shopify/orders_create.json")
    for n in range(4):
        order.update(id=1000 + n, name=f"#{n}")
        assert post_shop(client, order, "orders/create", worker=False).status_code == 202
    ids = list(session.scalars(select(InboxDelivery.id).order_by(InboxDelivery.id)))
    session.rollback()
    factory = session_factory(settings)

    def map_one(index: int) -> list[int]:
        db = factory()
        try:
            return map_and_commit(db, ids[index])
        finally:
            db.close()

    results = _race(4, map_one)
    assert sorted(len(r) for r in results if isinstance(r, list)) == [1, 1, 1, 1]
    assert counts(session)["contacts"] == 1 and counts(session)["events"] == 4
    statuses = set(session.scalars(select(InboxDelivery.status)))
    assert statuses == {"mapped"}


def test_concurrent_requests_through_http(settings: Settings, session: Session) -> None:
    body = fixture_bytes("shopify/orders_create.json")
    statuses: list[int] = []
    with TestClient(create_app()) as client:
        barrier = threading.Barrier(6)

        def deliver() -> None:
            barrier.wait()
            answer = post_shop(client, body, "orders/create", webhook_id="same", worker=False)
            statuses.append(answer.status_code)

        threads = [threading.Thread(target=deliver) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(statuses) == [200] * 5 + [202]
    assert counts(session)["inbox"] == 1


def test_out_of_order_events_keep_the_furthest_status(
    client: TestClient, session: Session, process: Callable[[], int]
) -> None:
    contact = {"email": "an@example.vn"}
    delivered = native_event("1", "order.delivered", contact, {"order_id": "7", "total": 300})
    created = native_event("2", "order.created", contact, {"order_id": "7", "total": 300})
    post_native(client, {"events": [delivered, created]})
    process()
    assert session.scalars(select(Order)).one().status == "delivered"
    assert process() == 0  # processing is once per event
    person = session.scalars(select(Contact)).one()
    assert (person.orders_count, person.total_spent) == (1, 300)


@pytest.mark.redis
def test_real_broker_path_on_redis(
    settings: Settings, session: Session, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dramatiq

    from automation.runtime.broker import configure_broker

    monkeypatch.setenv("REDIS_URL", redis_url)
    get_settings.cache_clear()
    broker = configure_broker(get_settings())
    broker.flush_all()
    worker = None
    try:
        with TestClient(create_app()) as client:
            assert client.get("/healthz").json()["broker"] == "ok"
            response = post_shop(client, fixture_bytes("shopify/orders_create.json"),
                                 "orders/create", worker=False)
            assert response.status_code == 202
        assert counts(session)["events"] == 0  # stored in the inbox; mapped by the worker
        worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
        worker.start()
        deadline = time.monotonic() + 10
        processed = None
        while time.monotonic() < deadline and processed is None:
            session.expire_all()
            processed = session.scalar(select(Event.processed_at))
            time.sleep(0.05)
        assert processed is not None  # map_inbox, then process_event, both through Redis
        session.expire_all()
        assert session.scalars(select(Contact)).one().orders_count == 1
        assert [e.type for e in events_of(session)] == ["order.created"]
    finally:
        if worker is not None:
            worker.stop()
        monkeypatch.delenv("REDIS_URL")
        get_settings.cache_clear()
        configure_broker(get_settings())


def test_enqueue_failure_still_answers_202(
    settings: Settings, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automation.runtime.broker import configure_broker

    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    get_settings.cache_clear()
    configure_broker(get_settings())
    try:
        with TestClient(create_app()) as client:
            event = native_event("q1", "contact.updated", {"email": "q@example.vn"})
            response = post_native(client, event)
            health = client.get("/healthz")
        assert response.status_code == 202 and response.json()["accepted"] == 1
        assert counts(session)["events"] == 1  # stored; the scheduler re-sends it later
        assert health.status_code == 503 and health.json()["broker"].startswith("error:")
    finally:
        monkeypatch.delenv("REDIS_URL")
        get_settings.cache_clear()
        configure_broker(get_settings())


def test_every_webhook_route_is_served_by_the_shortcut() -> None:
    """WebhookShortcut answers the POST paths it lists; a route missing there would
    silently fall back to the slower FastAPI path, one listed without a route would
    vanish from the OpenAPI document."""
    from fastapi.routing import APIRoute

    from automation.ingest import webhooks

    routed = {route.path for route in webhooks.router.routes
              if isinstance(route, APIRoute) and "POST" in route.methods}
    assert routed == set(webhooks.PATHS)


def test_webhook_with_database_down_answers_503_with_retry_after(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:9/down")
    get_settings.cache_clear()
    dispose_all()
    response = post_shop(client, fixture_bytes("shopify/orders_create.json"), "orders/create",
                         worker=False)
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "30"
    assert response.json()["error"] == "database_unavailable"
    get_settings.cache_clear()
    dispose_all()


@pytest.mark.parametrize("root_path", ["", "/api"])
def test_webhooks_are_answered_by_the_shortcut_also_under_a_root_path(
    settings: Settings, session: Session, monkeypatch: pytest.MonkeyPatch, root_path: str
) -> None:
    from automation.ingest import webhooks

    routed: list[bool] = []
    handle = webhooks.handle

    async def spy(request: Any, source: Any) -> Any:
        routed.append("endpoint" in request.scope)  # set when the router matched a route
        return await handle(request, source)

    monkeypatch.setattr(webhooks, "handle", spy)  # both the shortcut and the routes call it
    with TestClient(create_app(), root_path=root_path) as api:
        response = post_shop(api, fixture_bytes("shopify/orders_create.json"), "orders/create",
                             worker=False)
    assert response.status_code == 202, response.text
    assert session.scalars(select(InboxDelivery.id)).all() == response.json()["inbox_ids"]
    assert routed == [False]
