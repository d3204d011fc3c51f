"""Sapo GO webhooks (its own shape, not Shopify's) through the HTTP app, on both backends.

The fixture tests/fixtures/sapo_go/order.json is synthetic (see tests/fixtures/README.md).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.models import Contact, ContactIdentity, Order
from automation.ingest.sources import SAPO
from automation.ingest.sources.base import Ignored
from tests.ingest.helpers import counts, events_of, fixture_json
from tests.ingest.shop_helpers import post_signed, variant

ORDER = "sapo_go/order.json"
HEADERS = {
    "x-sapo-tenant-domain": "lanshop.mysapogo.com",
    "x-sapo-object-id": "512300481",
    "x-sapo-order-id": "512300481",
    "x-event-version": "1",
}


def post(client: TestClient, body: dict[str, object], topic: str) -> Response:
    """POST a signed Sapo GO delivery of one topic."""
    return post_signed(client, "sapo", body, **{"x-sapo-topic": topic}, **HEADERS)


@pytest.mark.parametrize(
    ("topic", "changes", "expected"),
    [
        ("orders/create", {}, "order.created"),
        ("orders/finalized", {}, "order.created"),
        ("orders/paid", {"payment_status": "paid"}, "order.paid"),
        ("orders/fulfilled", {"fulfillment_status": "shipped"}, "order.shipped"),
        ("orders/received", {"fulfillment_status": "received"}, "order.delivered"),
        ("orders/cancelled", {"status": "cancelled"}, "order.cancelled"),
        ("orders/update", {}, "order.created"),
        ("orders/update", {"payment_status": "paid"}, "order.paid"),
        ("orders/update", {"payment_status": "paid", "fulfillment_status": "shipped"},
         "order.shipped"),
        ("orders/update", {"status": "completed", "payment_status": "paid"}, "order.delivered"),
        ("orders/update", {"status": "cancelled"}, "order.cancelled"),
    ],
)
def test_every_order_topic_maps_to_its_canonical_event(
    client: TestClient, session: Session, topic: str, changes: dict[str, str], expected: str
) -> None:
    response = post(client, variant(ORDER, **changes), topic)
    assert response.status_code == 202, response.text
    [event] = events_of(session)
    assert (event.source, event.type) == ("sapo", expected)
    assert event.source_event_id == f"order:512300481:{expected}"
    props = event.payload["properties"]
    assert props["order_id"] == "512300481" and props["order_number"] == "SON00481"
    assert props["total"] == 645000 and props["currency"] == "VND"
    assert props["items"][0] == {"sku": "AOTHUN-M-DEN", "name": "Áo thun cotton - M / Đen",
                                 "quantity": 2, "price": 250000}
    assert props["placed_at"] == "2026-11-02T02:13:00+00:00"  # issued_on
    assert event.occurred_at.isoformat() == "2026-11-02T02:14:05+00:00"  # modified_on


@pytest.mark.parametrize("topic", ["customers/create", "customers/update"])
def test_customer_topics_update_the_contact(
    client: TestClient, session: Session, topic: str
) -> None:
    assert post(client, fixture_json("sapo_go/customer.json"), topic).status_code == 202
    [event] = events_of(session)
    assert event.type == "contact.updated"
    assert event.source_event_id == "customer:88120046:2026-11-01T08:30:00Z"
    contact = session.scalars(select(Contact)).one()
    assert (contact.email, contact.phone) == ("khoa.do@example.vn", "+84903111222")
    assert (contact.first_name, contact.last_name) == ("Khoa", "Đỗ Minh")


def test_order_without_email_is_identified_by_phone(
    client: TestClient, session: Session, process: Callable[[], int]
) -> None:
    assert post(client, fixture_json(ORDER), "orders/create").status_code == 202
    contact = session.scalars(select(Contact)).one()
    assert contact.email is None and contact.phone == "+84987654321"
    assert (contact.first_name, contact.last_name) == ("Lan", "Phạm Thị")
    identity = session.scalars(select(ContactIdentity)).one()
    assert (identity.source, identity.external_id) == ("sapo", "88120045")
    process()
    order = session.scalars(select(Order)).one()
    assert (order.external_id, order.total, order.contact_id) == ("512300481", 645000, contact.id)
    session.refresh(contact)
    assert (contact.orders_count, contact.total_spent) == (1, 645000)


def test_walk_in_order_without_customer_stores_no_empty_contact(
    client: TestClient, session: Session
) -> None:
    body = variant(ORDER, customer_id=None, customer_data=None, billing_address=None,
                   shipping_address=None)
    assert post(client, body, "orders/create").status_code == 202
    [event] = events_of(session)
    assert event.contact_id is None
    assert counts(session)["contacts"] == 0


def test_duplicate_delivery_and_repeated_saves_store_one_event_per_status(
    client: TestClient, session: Session
) -> None:
    first = post(client, fixture_json(ORDER), "orders/create")
    again = post(client, fixture_json(ORDER), "orders/create")  # Sapo retries
    edited = post(client, variant(ORDER, modified_on="2026-11-02T02:30:00Z",
                                  note="Gọi trước khi giao"), "orders/update")
    paid = variant(ORDER, modified_on="2026-11-02T03:00:00Z", payment_status="paid")
    paid_topic = post(client, paid, "orders/paid")
    paid_update = post(client, paid, "orders/update")  # same change, second topic
    assert first.status_code == 202
    assert [r.status_code for r in (again, edited)] == [200, 200]
    assert again.json()["inbox_ids"] == edited.json()["inbox_ids"] == first.json()["inbox_ids"]
    assert paid_topic.status_code == 202 and paid_update.status_code == 200
    assert paid_update.json()["inbox_ids"] == paid_topic.json()["inbox_ids"]
    assert [e.type for e in events_of(session)] == ["order.created", "order.paid"]


def test_draft_orders_are_quotes_and_store_nothing_until_finalized(
    client: TestClient, session: Session
) -> None:
    draft = post(client, variant(ORDER, status="draft"), "orders/create")
    assert draft.status_code == 202 and draft.json()["ignored"] is True
    assert set(counts(session).values()) == {0}
    assert post(client, fixture_json(ORDER), "orders/update").status_code == 202  # finalized
    assert [e.type for e in events_of(session)] == ["order.created"]


def test_sapo_web_bodies_still_take_the_shopify_family_parser(
    client: TestClient, session: Session
) -> None:
    shopify_shaped = fixture_json("shopify/orders_create.json")
    response = post_signed(client, "sapo", shopify_shaped, **{"X-Sapo-Topic": "orders/create"})
    assert response.status_code == 202
    [event] = events_of(session)
    assert event.payload["properties"]["order_number"] == "#1001"
    assert event.source_event_id.startswith("orders/create:450789469:")


def test_headers_name_the_shop_and_test_deliveries_are_ignored() -> None:
    headers = {"X-Sapo-Topic": "orders/create", **HEADERS}
    [event] = SAPO.map(headers, fixture_json(ORDER))
    assert event.properties["shop"] == "lanshop.mysapogo.com"
    with pytest.raises(Ignored, match="test delivery"):
        SAPO.map({**headers, "x-sapo-test": "true"}, fixture_json(ORDER))
