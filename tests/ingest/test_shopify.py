"""Shopify, Haravan and Sapo webhooks through the HTTP app, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.models import Cart, Consent, Contact, ContactIdentity, Order
from automation.core.models_inbox import InboxDelivery
from tests.ingest.helpers import counts, events_of, fixture_bytes, fixture_json, post_shop, settled

PLATFORMS = ["shopify", "haravan", "sapo"]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_order_create_stores_contact_identity_and_event(
    client: TestClient, session: Session, platform: str
) -> None:
    response = post_shop(client, fixture_bytes("shopify/orders_create.json"), "orders/create",
                         platform)
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 1 and len(body["inbox_ids"]) == 1
    delivery = session.get(InboxDelivery, body["inbox_ids"][0])
    assert delivery is not None and (delivery.status, delivery.source) == ("mapped", platform)
    assert delivery.body == fixture_bytes("shopify/orders_create.json")
    assert not any("hmac" in name for name in delivery.headers)
    contact = session.scalars(select(Contact)).one()
    assert contact.email == "bob.norman@hostmail.com"
    assert (contact.first_name, contact.last_name) == ("Bob", "Norman")
    identity = session.scalars(select(ContactIdentity)).one()
    assert (identity.source, identity.external_id) == (platform, "207119551")
    [event] = events_of(session)
    assert (event.source, event.type, event.contact_id) == (platform, "order.created", contact.id)
    props = event.payload["properties"]
    assert props["order_id"] == "450789469" and props["order_number"] == "#1001"
    assert props["total"] == 40994 and props["currency"] == "USD"  # "409.94" USD -> cents
    assert props["items"][0] == {"sku": "IPOD2008GREEN", "name": "IPod Nano - 8gb - green",
                                 "quantity": 1, "price": 19900}
    assert event.payload["contact"]["email"] == "bob.norman@hostmail.com"
    assert event.occurred_at.isoformat() == "2008-01-10T16:00:00+00:00"


def test_vnd_amounts_are_whole_dong_and_phone_is_e164(
    client: TestClient, session: Session
) -> None:
    order = fixture_json("shopify/orders_create.json")
    order.update(currency="VND", total_price="1250000.00", phone=None)
    order["line_items"][0]["price"] = "199000.00"
    order["customer"]["phone"] = "0912 345 678"
    order["customer"]["default_address"]["country_code"] = "VN"
    assert post_shop(client, order, "orders/create").status_code == 202
    [event] = events_of(session)
    assert event.payload["properties"]["total"] == 1250000
    assert event.payload["properties"]["items"][0]["price"] == 199000
    assert session.scalars(select(Contact)).one().phone == "+84912345678"


def test_redelivery_with_same_webhook_id_is_stored_once(
    client: TestClient, session: Session
) -> None:
    body = fixture_bytes("shopify/orders_create.json")
    webhook_id = "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"
    first = post_shop(client, body, "orders/create", webhook_id=webhook_id)
    again = post_shop(client, body, "orders/create", webhook_id=webhook_id)
    assert first.status_code == 202
    assert again.status_code == 200
    assert again.json() == {"duplicate": True, "inbox_ids": first.json()["inbox_ids"]}
    assert counts(session)["events"] == 1
    assert events_of(session)[0].source_event_id == "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043"


@pytest.mark.parametrize("platform", ["haravan", "sapo"])
def test_without_delivery_id_dedupe_uses_topic_resource_and_updated_at(
    client: TestClient, session: Session, platform: str
) -> None:
    order = fixture_json("shopify/orders_create.json")
    assert post_shop(client, order, "orders/create", platform).status_code == 202
    assert post_shop(client, order, "orders/create", platform).json()["duplicate"] is True
    order["updated_at"] = "2008-01-10T12:00:00-05:00"  # a real change is a new event
    assert post_shop(client, order, "orders/create", platform).status_code == 202
    keys = [e.source_event_id for e in events_of(session)]
    assert keys == [
        "orders/create:450789469:2008-01-10T11:00:00-05:00",
        "orders/create:450789469:2008-01-10T12:00:00-05:00",
    ]


@pytest.mark.parametrize("platform", PLATFORMS)
def test_wrong_or_missing_signature_is_401_and_stores_nothing(
    client: TestClient, session: Session, platform: str
) -> None:
    body = fixture_bytes("shopify/orders_create.json")
    wrong = post_shop(client, body, "orders/create", platform, signature="bm9wZQ==")
    missing = post_shop(client, body, "orders/create", platform, signature=None)
    other_secret = post_shop(client, body, "orders/create", "shopify" if platform != "shopify"
                             else "sapo", signature=None)
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_signature"
    assert missing.status_code == 401 and missing.json()["error"] == "missing_signature"
    assert other_secret.status_code == 401
    assert set(counts(session).values()) == {0}


def test_signature_of_another_platform_secret_is_rejected(
    client: TestClient, session: Session
) -> None:
    from automation.ingest.signatures import base64_hmac

    body = fixture_bytes("shopify/orders_create.json")
    response = post_shop(client, body, "orders/create", "haravan",
                         signature=base64_hmac("shopify-test-secret", body))
    assert response.status_code == 401
    assert counts(session)["events"] == 0


def test_unconfigured_secret_is_503_naming_the_variable(
    client: TestClient, session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automation.core.config import get_settings

    monkeypatch.delenv("SAPO_WEBHOOK_SECRET")
    get_settings.cache_clear()
    response = post_shop(client, fixture_bytes("shopify/orders_create.json"), "orders/create",
                         "sapo")
    assert response.status_code == 503
    assert "SAPO_WEBHOOK_SECRET" in response.json()["message"]
    assert counts(session)["events"] == 0


def test_body_over_limit_is_413_by_header_and_by_stream(
    client: TestClient, session: Session
) -> None:
    big = b'{"id": 1, "note": "' + b"x" * (1024 * 1024) + b'"}'
    assert post_shop(client, big, "orders/create").status_code == 413

    def chunks():  # no Content-Length: chunked transfer, counted while streaming
        yield b'{"id": 1, "note": "'
        for _ in range(64):
            yield b"y" * 20000
        yield b'"}'

    response = client.post(
        "/webhooks/shopify",
        content=chunks(),
        headers={"X-Shopify-Topic": "orders/create", "X-Shopify-Hmac-Sha256": "x"},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert set(counts(session).values()) == {0}


def test_malformed_json_is_422_and_unmappable_payloads_are_quarantined(
    client: TestClient, session: Session
) -> None:
    broken = post_shop(client, b'{"id": 1,', "orders/create")
    assert broken.status_code == 422
    assert broken.json()["field"] == "body" and "line 1" in broken.json()["message"]
    assert set(counts(session).values()) == {0}

    order = fixture_json("shopify/orders_create.json")
    no_id = copy.deepcopy(order)
    del no_id["id"]
    bad_price = copy.deepcopy(order)
    bad_price["line_items"][0]["price"] = "abc"
    cases = [(no_id, "id: is required"), (bad_price, "line_items[0].price: must be a decimal"),
             ([1, 2], "body: must be a JSON object")]
    for payload, reason in cases:
        response = post_shop(client, payload, "orders/create")  # type: ignore[arg-type]
        stored = settled(session, response)  # 202: Shopify would retry, then drop it
        assert stored.status == "quarantined"
        assert stored.reason is not None and stored.reason.startswith(reason)
    assert counts(session)["inbox"] == 3 and counts(session)["events"] == 0


def test_unknown_topic_is_202_ignored_and_stores_nothing(
    client: TestClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="automation.ingest.webhooks")
    response = post_shop(client, b'{"id": 1}', "products/create")
    assert response.status_code == 202
    assert response.json()["ignored"] is True and response.json()["accepted"] == 0
    assert set(counts(session).values()) == {0}
    assert any("outcome=ignored" in r.getMessage() and "products/create" in r.getMessage()
               for r in caplog.records)


def test_logs_carry_no_personal_data(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    post_shop(client, fixture_bytes("shopify/orders_create.json"), "orders/create")
    post_shop(client, fixture_bytes("shopify/orders_create.json"), "orders/create", signature="x")
    text = caplog.text
    assert "outcome=accepted" in text and "outcome=unauthorized" in text
    assert "bob.norman" not in text and "555" not in text


def test_customer_consents_and_lead_capture(client: TestClient, session: Session) -> None:
    plain = post_shop(client, fixture_bytes("shopify/customers_create.json"), "customers/create")
    assert plain.status_code == 202
    assert events_of(session)[0].type == "contact.updated"
    assert counts(session)["consents"] == 0  # accepts_marketing false: no consent recorded

    customer = fixture_json("shopify/customers_create.json")
    customer.update(id=99, email="Lan.Nguyen@Example.VN", phone="+84 912 345 678",
                    email_marketing_consent={"state": "subscribed"},
                    sms_marketing_consent={"state": "unsubscribed"})
    response = post_shop(client, customer, "customers/create")
    assert response.status_code == 202
    event = events_of(session)[-1]
    assert event.type == "lead.captured"
    assert event.payload["properties"]["form"] == "shopify:customers/create"
    contact = session.get(Contact, event.contact_id)
    assert contact is not None
    assert (contact.email, contact.phone) == ("lan.nguyen@example.vn", "+84912345678")
    consents = {(c.channel, c.purpose): (c.status, c.source)
                for c in session.scalars(select(Consent).where(Consent.contact_id == contact.id))}
    assert consents == {("email", "marketing"): ("granted", "shopify"),
                        ("sms", "marketing"): ("denied", "shopify")}

    customer["email_marketing_consent"] = {"state": "unsubscribed"}
    customer["updated_at"] = "2014-01-23T00:00:00-05:00"
    assert post_shop(client, customer, "customers/update").status_code == 202
    session.expire_all()
    email = session.scalars(select(Consent).where(Consent.channel == "email",
                                                  Consent.contact_id == contact.id)).one()
    assert email.status == "denied"
    assert events_of(session)[-1].type == "contact.updated"


def test_rollups_count_an_order_once_and_cancel_takes_it_back(
    client: TestClient, session: Session, process: Callable[[], int]
) -> None:
    order = fixture_json("shopify/orders_create.json")
    assert post_shop(client, order, "orders/create").status_code == 202
    assert post_shop(client, order, "orders/paid").status_code == 202
    second = copy.deepcopy(order)
    second.update(id=450789470, name="#1002", total_price="100.00",
                  created_at="2008-02-01T10:00:00+07:00")
    assert post_shop(client, second, "orders/create").status_code == 202
    assert process() == 3
    contact = session.scalars(select(Contact)).one()
    session.refresh(contact)
    assert (contact.orders_count, contact.total_spent) == (2, 40994 + 10000)
    assert contact.first_order_at is not None and contact.last_order_at is not None
    assert contact.first_order_at.isoformat() == "2008-01-10T16:00:00+00:00"
    assert contact.last_order_at.isoformat() == "2008-02-01T03:00:00+00:00"
    assert session.scalars(select(Order).where(Order.external_id == "450789469")).one().status \
        == "paid"

    cancelled = copy.deepcopy(second)
    cancelled.update(cancelled_at="2008-02-02T10:00:00+07:00", cancel_reason="customer",
                     updated_at="2008-02-02T10:00:00+07:00")
    assert post_shop(client, cancelled, "orders/cancelled").status_code == 202
    process()
    session.refresh(contact)
    assert (contact.orders_count, contact.total_spent) == (1, 40994)
    assert contact.last_order_at is not None
    assert contact.last_order_at.isoformat() == "2008-01-10T16:00:00+00:00"

    refund = {"id": 509562969, "order_id": 450789469, "created_at": "2008-03-01T10:00:00Z",
              "transactions": [{"amount": "9.94", "kind": "refund", "status": "success",
                                "currency": "USD"}]}
    assert post_shop(client, refund, "refunds/create").status_code == 202
    process()
    session.refresh(contact)
    assert (contact.orders_count, contact.total_spent) == (1, 40000)  # partial refund
    refund.update(id=509562970, transactions=[{"amount": "400.00", "kind": "refund",
                                               "currency": "USD"}])
    assert post_shop(client, refund, "refunds/create").status_code == 202
    process()
    session.refresh(contact)
    assert (contact.orders_count, contact.total_spent) == (0, 0)
    refunded = events_of(session, "order.refunded")
    assert all(e.contact_id == contact.id for e in refunded)  # resolved from the order


def test_checkout_cart_and_conversion(
    client: TestClient, session: Session, process: Callable[[], int]
) -> None:
    checkout = fixture_json("shopify/checkouts_create.json")
    assert post_shop(client, checkout, "checkouts/create").status_code == 202
    checkout["updated_at"] = "2012-10-12T08:00:00-04:00"
    checkout["line_items"] = checkout["line_items"][:1]
    checkout["total_price"] = "199.00"
    assert post_shop(client, checkout, "checkouts/update").status_code == 202
    assert [e.type for e in events_of(session)] == ["checkout.started", "cart.updated"]
    process()
    cart = session.scalars(select(Cart)).one()
    assert cart.external_id == "2a1ace52255252df566af0faaedfbfa7"
    assert cart.total == 19900 and len(cart.items) == 1
    assert cart.recovery_url is not None and cart.recovery_url.endswith("recovered=1")
    assert cart.converted_at is None and cart.contact_id is not None

    order = fixture_json("shopify/orders_create.json")
    order["checkout_token"] = "2a1ace52255252df566af0faaedfbfa7"
    assert post_shop(client, order, "orders/create").status_code == 202
    process()
    session.refresh(cart)
    assert cart.converted_at is not None
    assert session.scalars(select(Order)).one().checkout_token == cart.external_id


def test_fulfillments_map_to_shipped_and_delivered(
    client: TestClient, session: Session, process: Callable[[], int]
) -> None:
    assert post_shop(client, fixture_bytes("shopify/orders_create.json"),
                     "orders/create").status_code == 202
    process()
    shipped = post_shop(client, fixture_bytes("shopify/fulfillments_create.json"),
                        "fulfillments/create")
    assert shipped.status_code == 202
    fulfillment = fixture_json("shopify/fulfillments_create.json")
    fulfillment.update(status="success", shipment_status="delivered",
                       updated_at="2013-11-03T10:00:00-04:00")
    assert post_shop(client, fulfillment, "fulfillments/update").status_code == 202
    fulfillment.update(status="cancelled", updated_at="2013-11-04T10:00:00-04:00")
    ignored = post_shop(client, fulfillment, "fulfillments/update")
    assert settled(session, ignored).status == "ignored"
    process()
    contact = session.scalars(select(Contact)).one()
    ship, deliver = events_of(session)[1:]
    assert (ship.type, deliver.type) == ("order.shipped", "order.delivered")
    assert ship.payload["properties"]["tracking_number"] == "1Z2345"
    assert ship.payload["properties"]["carrier"] == "null-company"
    assert ship.contact_id == contact.id and deliver.contact_id == contact.id
    assert session.scalars(select(Order)).one().status == "delivered"
