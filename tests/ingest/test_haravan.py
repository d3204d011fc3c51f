"""Haravan: the GET subscription check and the order topics Haravan sends, on both backends.

tests/fixtures/haravan/order.json has the shape of a captured Haravan order with invented
personal data (see tests/fixtures/README.md): note the numeric prices and `country_code: vn`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.config import Settings, get_settings
from automation.core.db import session_factory
from automation.core.models import Contact, Order
from automation.ingest.sources import HARAVAN
from tests.ingest.helpers import counts, events_of, fixture_json, store_once
from tests.ingest.shop_helpers import post_signed, variant

ORDER = "haravan/order.json"
TOKEN = "hrv-verify-2f9c"
SUBSCRIBE = {"hub.mode": "subscribe", "hub.verify_token": TOKEN, "hub.challenge": "1158201444"}


@pytest.fixture
def verify_token(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> str:
    """HARAVAN_VERIFY_TOKEN set for the test."""
    monkeypatch.setenv("HARAVAN_VERIFY_TOKEN", TOKEN)
    get_settings.cache_clear()
    return TOKEN


def test_subscription_check_echoes_the_challenge(client: TestClient, verify_token: str) -> None:
    response = client.get("/webhooks/haravan", params=SUBSCRIBE)
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        {**SUBSCRIBE, "hub.verify_token": "wrong"},
        {**SUBSCRIBE, "hub.verify_token": ""},
        {k: v for k, v in SUBSCRIBE.items() if k != "hub.verify_token"},
        {**SUBSCRIBE, "hub.mode": "unsubscribe"},
        {k: v for k, v in SUBSCRIBE.items() if k != "hub.challenge"},
    ],
)
def test_subscription_check_refuses_anything_else_with_401(
    client: TestClient, verify_token: str, params: dict[str, str]
) -> None:
    response = client.get("/webhooks/haravan", params=params)
    assert response.status_code == 401
    assert response.json()["error"] == "verification_failed"
    assert "1158201444" not in response.text


def test_subscription_check_without_a_configured_token_is_503_naming_it(
    client: TestClient,
) -> None:
    response = client.get("/webhooks/haravan", params=SUBSCRIBE)
    assert response.status_code == 503
    assert response.json()["field"] == "HARAVAN_VERIFY_TOKEN"


def post(client: TestClient, body: dict[str, Any], topic: str) -> Response:
    """POST a signed Haravan delivery."""
    return post_signed(client, "haravan", body, **{
        "X-Haravan-Topic": topic, "X-Haravan-Org-Id": "200000480123"})


def test_order_create_reads_numeric_prices_and_lower_case_country(
    client: TestClient, session: Session, process: Callable[[], int]
) -> None:
    response = post_signed(client, "haravan", fixture_json(ORDER),
                           **{"X-Haravan-Topic": "orders/create"})
    assert response.status_code == 202, response.text
    [event] = events_of(session)
    props = event.payload["properties"]
    assert (props["total"], props["currency"], props["order_number"]) == (400000, "VND", "#100271")
    assert props["items"][0]["price"] == 185000 and props["items"][0]["quantity"] == 2
    contact = session.scalars(select(Contact)).one()
    assert (contact.email, contact.phone) == ("hoa.le@example.vn", "+84935123456")
    process()
    assert session.scalars(select(Order)).one().total == 400000


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"financial_status": "paid"}, "order.paid"),
        ({"financial_status": "paid", "fulfillment_status": "fulfilled"}, "order.shipped"),
        ({"fulfillment_status": "fulfilled",
          "fulfillments": [{"id": 1, "carrier_status_code": "delivered",
                            "tracking_number": "GHN123"}]}, "order.delivered"),
        ({"cancelled_status": "cancelled", "cancelled_at": "2026-11-02T05:00:00Z",
          "cancel_reason": "customer"}, "order.cancelled"),
        ({"financial_status": "refunded"}, "order.refunded"),
    ],
)
def test_orders_updated_maps_the_status_it_reached(
    client: TestClient, session: Session, changes: dict[str, object], expected: str
) -> None:
    response = post(client, variant(ORDER, **changes), "orders/updated")
    assert response.status_code == 202, response.text
    [event] = events_of(session)
    assert (event.source, event.type) == ("haravan", expected)
    assert event.source_event_id == f"order:1200450017:{expected}"


@pytest.mark.parametrize(
    ("topic", "expected"),
    [("orders/paid", "order.paid"), ("orders/fulfilled", "order.shipped"),
     ("orders/cancelled", "order.cancelled"), ("customers/create", "contact.updated"),
     ("customers/update", "contact.updated")],
)
def test_other_haravan_topics(
    client: TestClient, session: Session, topic: str, expected: str
) -> None:
    body = fixture_json(ORDER)
    if topic.startswith("customers/"):
        body = body["customer"]
    assert post(client, body, topic).status_code == 202
    assert [e.type for e in events_of(session)] == [expected]


def test_orders_updated_without_progress_is_ignored_and_repeated_saves_stored_once(
    client: TestClient, session: Session
) -> None:
    placed = post(client, fixture_json(ORDER), "orders/updated")
    assert placed.status_code == 202 and placed.json()["ignored"] is True
    paid = post(client, variant(ORDER, financial_status="paid"), "orders/updated")
    resaved = post(client, variant(ORDER, financial_status="paid", note="Giao buổi sáng",
                                   updated_at="2026-11-02T06:00:00Z"), "orders/updated")
    assert paid.status_code == 202
    assert resaved.status_code == 200 and resaved.json()["duplicate"] is True
    assert counts(session)["events"] == 1


def test_org_id_header_names_the_shop(settings: Settings) -> None:
    headers = {"X-Haravan-Topic": "orders/updated", "X-Haravan-Org-Id": "200000480123"}
    events = HARAVAN.map(headers, variant(ORDER, financial_status="paid"))
    assert events[0].properties["shop"] == "200000480123"
    factory = session_factory(settings)
    first = store_once(factory, "haravan", events)
    again = store_once(factory, "haravan", HARAVAN.map(headers, variant(
        ORDER, financial_status="paid")))
    assert first.new_ids and again.duplicate
