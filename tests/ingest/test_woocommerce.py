"""WooCommerce webhooks through the HTTP app, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.models import Contact, Order
from automation.core.models_inbox import InboxDelivery
from tests.ingest.helpers import counts, events_of, fixture_bytes, fixture_json, post_woo


def test_order_created_fixture_is_order_paid(client: TestClient, session: Session) -> None:
    response = post_woo(client, fixture_bytes("woocommerce/order_created.json"))
    assert response.status_code == 202, response.text
    [event] = events_of(session)
    assert (event.source, event.type) == ("woocommerce", "order.paid")  # status processing
    assert event.source_event_id == "order:727:order.paid"
    props = event.payload["properties"]
    assert (props["order_id"], props["total"], props["currency"]) == ("727", 2935, "USD")
    assert props["items"][1] == {"sku": "Bar3", "name": props["items"][1]["name"],
                                 "quantity": 1, "price": 1200}
    contact = session.scalars(select(Contact)).one()
    assert contact.email == "john.doe@example.com" and event.contact_id == contact.id
    assert counts(session)["identities"] == 0  # customer_id 0 is a guest
    assert event.occurred_at.isoformat() == "2017-03-22T19:28:08+00:00"


def test_redelivery_and_repeated_updates_are_stored_once(
    client: TestClient, session: Session
) -> None:
    body = fixture_bytes("woocommerce/order_created.json")
    assert post_woo(client, body).status_code == 202
    again = post_woo(client, body, topic="order.updated")
    assert again.status_code == 200 and again.json()["duplicate"] is True
    assert counts(session)["events"] == 1


def test_ping_on_webhook_creation_gets_200_and_stores_nothing(
    client: TestClient, session: Session
) -> None:
    response = client.post(
        "/webhooks/woocommerce",
        content=b"webhook_id=15",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200 and response.json()["ping"] is True
    assert set(counts(session).values()) == {0}
    not_ping = client.post("/webhooks/woocommerce", content=b"webhook_id=15&x=1")
    assert not_ping.status_code == 401


def test_bad_signature_is_401_and_stores_nothing(client: TestClient, session: Session) -> None:
    body = fixture_bytes("woocommerce/order_created.json")
    assert post_woo(client, body, signature="AAAA").status_code == 401
    assert post_woo(client, body, signature=None).status_code == 401
    assert set(counts(session).values()) == {0}


def test_statuses_map_and_rollups_follow(
    client: TestClient, session: Session, process: Callable[[], int]
) -> None:
    order = fixture_json("woocommerce/order_created.json")
    order.update(customer_id=12, status="pending", currency="VND", total="1250000")
    assert post_woo(client, order).status_code == 202
    order.update(status="processing")
    assert post_woo(client, order, topic="order.updated").status_code == 202
    order.update(status="completed")
    assert post_woo(client, order, topic="order.updated").status_code == 202
    order.update(status="failed")
    ignored = post_woo(client, order, topic="order.updated")
    assert ignored.status_code == 202 and ignored.json()["ignored"] is True
    assert [e.type for e in events_of(session)] == ["order.created", "order.paid",
                                                    "order.delivered"]
    process()
    contact = session.scalars(select(Contact)).one()
    assert (contact.orders_count, contact.total_spent) == (1, 1250000)
    assert session.scalars(select(Order)).one().status == "delivered"

    order.update(status="refunded", refunds=[{"id": 1, "total": "-1250000"}])
    assert post_woo(client, order, topic="order.updated").status_code == 202
    process()
    session.refresh(contact)
    assert (contact.orders_count, contact.total_spent) == (0, 0)


def test_customer_topics_upsert_the_contact(client: TestClient, session: Session) -> None:
    customer = {
        "id": 25, "email": "Mai.Tran@Example.vn", "first_name": "Mai", "last_name": "Trần",
        "date_modified_gmt": "2026-11-01T02:00:00",
        "billing": {"phone": "0987 654 321", "country": "VN"},
    }
    assert post_woo(client, customer, topic="customer.created").status_code == 202
    contact = session.scalars(select(Contact)).one()
    assert (contact.email, contact.phone, contact.last_name) == (
        "mai.tran@example.vn", "+84987654321", "Trần")
    assert events_of(session)[0].type == "contact.updated"


def test_unmappable_signed_payload_is_202_and_quarantined(
    client: TestClient, session: Session
) -> None:
    # WooCommerce never retries and disables a webhook after more than 5 failed answers.
    response = post_woo(client, {"id": 5, "total": "1"}, topic="order.updated")
    assert response.status_code == 202 and response.json()["quarantined"] == 1
    reason = "status: is required; include `status` in the payload"
    assert response.json()["reason"] == reason
    delivery = session.scalars(select(InboxDelivery)).one()
    assert (delivery.status, delivery.reason) == ("quarantined", reason)
    assert counts(session)["events"] == 0
