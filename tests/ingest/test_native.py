"""Native events: single and batch, signature with timestamp, replay window, validation."""

from __future__ import annotations

import time
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.models import Cart, Consent, Contact, ContactIdentity
from tests.ingest.helpers import counts, events_of, native_event, post_native

LAN = {"external_id": "u-1", "email": "lan@example.vn", "phone": "0912345678",
       "first_name": "Lan", "timezone": "Asia/Ho_Chi_Minh",
       "consent": {"email": {"marketing": True}, "zalo": {"marketing": False}}}


def test_single_lead_captured(client: TestClient, session: Session) -> None:
    event = native_event("form-1", "lead.captured", LAN, {"form": "newsletter", "utm": "fb"})
    response = post_native(client, event)
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == 1
    [stored] = events_of(session)
    assert (stored.source, stored.source_event_id, stored.type) == ("native", "form-1",
                                                                    "lead.captured")
    assert stored.payload["properties"] == {"form": "newsletter", "utm": "fb"}
    contact = session.scalars(select(Contact)).one()
    assert (contact.email, contact.phone, contact.timezone) == (
        "lan@example.vn", "+84912345678", "Asia/Ho_Chi_Minh")
    assert session.scalars(select(ContactIdentity)).one().external_id == "u-1"
    consents = {(c.channel, c.status) for c in session.scalars(select(Consent))}
    assert consents == {("email", "granted"), ("zalo", "denied")}


def test_batch_of_1000_and_over_limit(client: TestClient, session: Session) -> None:
    batch = {"events": [
        native_event(f"e{i}", "contact.updated", {"external_id": f"c{i % 50}"}) for i in range(1000)
    ]}
    response = post_native(client, batch)
    assert response.status_code == 202
    assert response.json()["accepted"] == 1000 and len(response.json()["inbox_ids"]) == 1000
    assert counts(session)["contacts"] == 50 and counts(session)["events"] == 1000
    too_many = {"events": batch["events"] + [native_event("x", "contact.updated",
                                                          {"external_id": "x"})]}
    response = post_native(client, too_many)
    assert response.status_code == 422 and response.json()["field"] == "events"
    assert counts(session)["events"] == 1000


def test_batch_with_some_duplicates(client: TestClient, session: Session) -> None:
    first = {"events": [native_event("a", "contact.updated", LAN)]}
    assert post_native(client, first).status_code == 202
    again = post_native(client, first)
    assert again.status_code == 200 and again.json()["duplicate"] is True
    mixed = {"events": [native_event("a", "contact.updated", LAN),
                        native_event("b", "contact.updated", LAN)]}
    response = post_native(client, mixed)
    assert response.status_code == 202
    assert response.json()["accepted"] == 1 and response.json()["duplicates"] == 1
    assert counts(session)["events"] == 2


def test_signature_and_replay_window(client: TestClient, session: Session) -> None:
    event = native_event("s1", "contact.updated", LAN)
    # 10 s beyond the 300 s window: int() truncation and a slow request cannot matter.
    stale = post_native(client, event, timestamp=int(time.time()) - 310)
    future = post_native(client, event, timestamp=int(time.time()) + 310)
    wrong_secret = post_native(client, event, secret="not-the-secret")
    no_signature = post_native(client, event, signature=None)
    body_only = post_native(client, event, signature="sha256=" + "0" * 64)
    assert stale.status_code == 401 and stale.json()["error"] == "stale_timestamp"
    assert future.status_code == 401
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_signature"
    assert no_signature.status_code == 401 and body_only.status_code == 401
    missing_ts = client.post("/webhooks/events", content=b"{}", headers={"X-Signature": "sha256=0"})
    assert missing_ts.status_code == 401 and missing_ts.json()["error"] == "missing_timestamp"
    assert set(counts(session).values()) == {0}
    assert post_native(client, event, timestamp=int(time.time()) - 290).status_code == 202


def test_validation_errors_name_the_field(client: TestClient, session: Session) -> None:
    bad_email = native_event("v1", "lead.captured", {"email": "not-an-email"})
    response = post_native(client, bad_email)
    assert response.status_code == 422
    assert response.json()["field"] == "contact.email"

    nobody = native_event("v2", "lead.captured", {"first_name": "Lan"})
    assert post_native(client, nobody).json()["field"] == "contact"

    batch = {"events": [native_event("v3", "order.paid", LAN, {"order_id": "1", "total": 5}),
                        native_event("v4", "order.paid", LAN, {"total": 5})]}
    response = post_native(client, batch)
    assert response.status_code == 422
    assert response.json()["field"] == "events[1].properties.order_id"

    negative = native_event("v5", "order.paid", LAN, {"order_id": "1", "total": -5})
    assert post_native(client, negative).json()["field"] == "properties.total"
    unknown_type = native_event("v6", "order.teleported", LAN)
    assert post_native(client, unknown_type).json()["field"] == "type"
    missing = {"id": "v7", "type": "lead.captured", "contact": LAN}
    assert post_native(client, missing).json()["field"] == "occurred_at"
    dup_ids = {"events": [native_event("d", "contact.updated", LAN),
                          native_event("d", "contact.updated", LAN)]}
    assert post_native(client, dup_ids).json()["field"] == "events[1].id"
    assert set(counts(session).values()) == {0}


def test_native_order_lifecycle_and_cart_conversion(
    client: TestClient, session: Session, process: Callable[[], int]
) -> None:
    cart = native_event("c1", "checkout.started", LAN, {
        "cart_id": "cart-9", "total": 500000, "recovery_url": "https://shop.vn/cart/9",
        "items": [{"sku": "AO-1", "name": "Áo", "quantity": 1, "price": 500000}]})
    order = native_event("o1", "order.created", LAN, {
        "order_id": "1001", "total": 500000, "checkout_token": "cart-9",
        "placed_at": "2026-11-02T09:00:00+07:00"})
    paid = native_event("o2", "order.paid", LAN, {"order_id": "1001", "total": 500000})
    partial = native_event("o3", "order.refunded", LAN, {"order_id": "1001",
                                                         "refund_amount": 100000})
    assert post_native(client, {"events": [cart, order, paid, partial]}).status_code == 202
    process()
    contact = session.scalars(select(Contact)).one()
    assert (contact.orders_count, contact.total_spent) == (1, 400000)
    assert contact.first_order_at is not None
    assert contact.first_order_at.isoformat() == "2026-11-02T02:00:00+00:00"
    assert session.scalars(select(Cart)).one().converted_at is not None
