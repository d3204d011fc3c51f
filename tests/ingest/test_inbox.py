"""The durable inbox: hostile bodies, quarantine and replay, database and Redis down."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from admin_cli.main import app as mactl
from automation.core.config import Settings, get_settings
from automation.core.db import dispose_all, session_factory
from automation.core.models import Contact, Event
from automation.core.models_inbox import InboxDelivery
from automation.ingest.app import create_app
from automation.ingest.signatures import native_signature
from automation.runtime.broker import configure_broker
from automation.runtime.scheduler import run_pass
from tests.ingest.helpers import (
    SECRETS,
    counts,
    fixture_json,
    native_event,
    post_native,
    post_shop,
    post_woo,
    run_worker,
    settled,
)

LAN = {"email": "lan@example.vn"}
runner = CliRunner()


def test_hostile_json_is_4xx_and_stores_nothing(client: TestClient, session: Session) -> None:
    deep = b"[" * 10000 + b"]" * 10000
    shallow_but_over = b'{"id": 1, "x": ' + b"[" * 70 + b"]" * 70 + b"}"
    huge_int = b'{"id": ' + b"9" * 5000 + b"}"
    nul = b'{"id": 1, "note": "a\\u0000b"}'
    for body in (deep, shallow_but_over, huge_int, nul):
        for response in (post_shop(client, body, "orders/create"), post_native(client, body)):
            assert response.status_code == 422, (body[:20], response.text)
            assert response.json()["field"] == "body"
    escaped = b'{"id": 1, "note": "a\\\\u0000b"}'  # an escaped backslash, then text: fine
    assert post_shop(client, escaped, "orders/create").status_code == 202
    ts = "9" * 400
    event = json.dumps(native_event("t1", "contact.updated", LAN)).encode()
    stamped = client.post("/webhooks/events", content=event, headers={
        "X-Timestamp": ts, "X-Signature": native_signature(SECRETS["events"], ts, event)})
    assert stamped.status_code == 401 and stamped.json()["error"] == "invalid_timestamp"
    assert counts(session)["inbox"] == 1  # only the escaped one


@pytest.mark.parametrize(
    ("change", "field", "gist"),
    [
        ({"total_price": "1e30", "current_total_price": None}, "total_price", "out of range"),
        ({"total_price": "1e25", "current_total_price": None}, "total_price", "out of range"),
        ({"id": "9" * 129}, "id", "129 characters"),
    ],
)
def test_shop_values_beyond_the_columns_are_quarantined(
    client: TestClient, session: Session, change: dict[str, object], field: str, gist: str
) -> None:
    """Stored raw and answered 202; the worker quarantines it naming the field."""
    order = fixture_json("shopify/orders_create.json")
    order.update(change)
    delivery = settled(session, post_shop(client, order, "orders/create"))
    reason = delivery.reason or ""
    assert delivery.status == "quarantined"
    assert reason.startswith(f"{field}: ") and gist in reason, reason
    assert counts(session)["events"] == 0 and counts(session)["contacts"] == 0


def test_a_shop_name_beyond_its_column_is_cut_not_quarantined(
    client: TestClient, session: Session
) -> None:
    order = fixture_json("shopify/orders_create.json")
    order.update(customer={"id": 5, "first_name": "L" * 121})
    response = post_shop(client, order, "orders/create")
    assert response.status_code == 202 and "quarantined" not in response.json()
    contact = session.scalars(select(Contact)).one()
    assert contact.first_name == "L" * 120
    assert session.scalars(select(InboxDelivery.status)).one() == "mapped"


def test_native_values_beyond_the_columns_are_422_naming_the_field(
    client: TestClient, session: Session
) -> None:
    for total in (10**30, 2**63):
        event = native_event("n1", "order.paid", LAN, {"order_id": "1", "total": total})
        response = post_native(client, event)
        assert response.status_code == 422 and response.json()["field"] == "properties.total"
    long_id = native_event("n2", "order.paid", LAN, {"order_id": "x" * 129})
    assert post_native(client, long_id).json()["field"] == "properties.order_id"
    assert set(counts(session).values()) == {0}


def test_a_value_the_database_refuses_ends_quarantined_never_retried_forever(
    client: TestClient, session: Session
) -> None:
    order = fixture_json("shopify/orders_create.json")
    body = json.dumps(order).replace('"Bob"', '"\\ud800"').encode()  # a lone surrogate
    assert post_shop(client, body, "orders/create").status_code == 202
    assert run_worker() == []  # nothing left pending
    delivery = session.scalars(select(InboxDelivery)).one()
    assert delivery.status == "quarantined", delivery.reason  # neither driver encodes it
    assert delivery.reason is not None and delivery.reason.startswith("store failed: ")
    assert "\n" not in delivery.reason and "Bob" not in delivery.reason
    assert counts(session)["events"] == 0 and counts(session)["contacts"] == 0


def test_quarantined_delivery_is_replayed_after_a_fix_and_replay_is_idempotent(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    order = fixture_json("shopify/orders_create.json")
    order.update(total_price="100000000000000.00", current_total_price=None)  # 10^16 cents
    response = post_shop(client, order, "orders/create")
    inbox_id = response.json()["inbox_ids"][0]
    listed = runner.invoke(mactl, ["inbox", "list", "--status", "quarantined", "--json"])
    assert listed.exit_code == 0, listed.output
    [row] = json.loads(listed.output)
    assert (row["id"], row["source"]) == (inbox_id, "shopify")
    assert row["reason"].startswith("total_price: ") and "out of range" in row["reason"]
    shown = runner.invoke(mactl, ["inbox", "show", str(inbox_id), "--json"])
    assert json.loads(shown.output)["body"].startswith("{")

    monkeypatch.setattr("automation.ingest.sources.base.MAX_MINOR_UNITS", 10**17)  # "the fix"
    replayed = runner.invoke(mactl, ["inbox", "replay", str(inbox_id), "--json"])
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.output)["mapped"] == [inbox_id]
    assert json.loads(replayed.output)["new_events"] == 1
    [event] = session.scalars(select(Event)).all()
    assert event.processed_at is not None and event.payload["properties"]["total"] == 10**16
    again = runner.invoke(mactl, ["inbox", "replay", "--all-quarantined", "--json"])
    assert json.loads(again.output)["new_events"] == 0
    by_id = runner.invoke(mactl, ["inbox", "replay", str(inbox_id), "--json"])
    assert json.loads(by_id.output)["skipped"] == [inbox_id]
    assert counts(session)["events"] == 1


def test_inbox_cli_errors_are_one_line(settings: Settings) -> None:
    bad_status = runner.invoke(mactl, ["inbox", "list", "--status", "lost"])
    assert bad_status.exit_code == 2 and "pending, mapped" in bad_status.output
    missing = runner.invoke(mactl, ["inbox", "show", "42"])
    assert missing.exit_code == 2 and "no inbox delivery 42" in missing.output
    huge = runner.invoke(mactl, ["inbox", "show", "9" * 30])
    assert huge.exit_code == 2 and "Traceback" not in huge.output
    nothing = runner.invoke(mactl, ["inbox", "replay"])
    assert nothing.exit_code == 2 and "--all-quarantined" in nothing.output


def test_woocommerce_never_sees_a_failure_for_a_signed_payload(
    client: TestClient, session: Session
) -> None:
    bodies = [{"id": n, "status": "processing", "total": "abc"} for n in range(7)]
    answers = [post_woo(client, body, topic="order.updated").status_code for body in bodies]
    assert answers == [202] * 7  # more than 5 failures in a row would disable the webhook
    assert counts(session)["inbox"] == 7
    assert set(session.scalars(select(InboxDelivery.status))) == {"quarantined"}


@pytest.fixture
def database_down(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    """The app with DATABASE_URL pointing at a closed port (the real server keeps running)."""
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    dispose_all()
    yield client


def test_database_down_answers_503_json_with_retry_after(
    database_down: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    from automation.links import tracking_url

    caplog.set_level(logging.INFO)
    order = fixture_json("shopify/orders_create.json")
    answers = [
        post_shop(database_down, order, "orders/create", worker=False),
        post_native(database_down, native_event("d1", "contact.updated", LAN), worker=False),
        database_down.get(urlsplit(tracking_url(1, 0)).path, follow_redirects=False),
    ]
    for answer in answers:
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "30"
        assert answer.json()["error"] == "database_unavailable"
    health = database_down.get("/healthz")
    assert health.status_code == 503 and health.json()["database"] == "down"
    lines = [r for r in caplog.records if r.name == "automation.ingest.unavailable"]
    assert len(lines) == 3 and all(r.exc_info is None for r in lines)
    assert not any(r.exc_info for r in caplog.records)  # no traceback anywhere


@pytest.mark.redis
def test_webhooks_are_stored_while_redis_is_down_and_mapped_when_it_returns(
    settings: Settings, session: Session, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    get_settings.cache_clear()
    configure_broker(get_settings())
    try:
        with TestClient(create_app()) as client:
            order = fixture_json("shopify/orders_create.json")
            started = time.perf_counter()
            for n in range(3):
                order.update(id=500 + n, name=f"#{n}")
                answer = post_shop(client, order, "orders/create", worker=False)
                assert answer.status_code == 202 and answer.json()["accepted"] == 1
            assert time.perf_counter() - started < 5
        assert counts(session)["inbox"] == 3 and counts(session)["events"] == 0
        # Redis is back; the queue messages were never sent: the scheduler's pass maps them.
        monkeypatch.setenv("REDIS_URL", redis_url)
        get_settings.cache_clear()
        configure_broker(get_settings())
        results = run_pass(session_factory(), None)
        assert results["inbox"] == 3
        session.expire_all()
        assert set(session.scalars(select(InboxDelivery.status))) == {"mapped"}
        assert session.scalars(select(Contact)).one().orders_count == 3
        assert all(e.processed_at for e in session.scalars(select(Event)))
    finally:
        monkeypatch.delenv("REDIS_URL")
        get_settings.cache_clear()
        configure_broker(get_settings())
