"""Shopify delivery headers: X-Shopify-Event-Id as the dedupe key (webhook id as fallback)
and the unprefixed Shopify-* headers of the newer Events deliveries."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from automation.core.config import Settings
from automation.core.db import session_factory
from automation.ingest.signatures import base64_hmac, verify_base64_hmac
from automation.ingest.sources import SHOPIFY
from tests.ingest.helpers import (
    SECRETS,
    counts,
    fixture_bytes,
    fixture_json,
    run_worker,
    store_once,
)

EVENT_ID = "3b0f6e2a-7d4c-4d8e-9f1a-2c5b6a7e8d90"
PREFIXED = {
    "X-Shopify-Topic": "orders/create",
    "X-Shopify-Event-Id": EVENT_ID,
    "X-Shopify-Webhook-Id": "b54557e4-bdd9-4b37-8a5f-bf7d70bcd043",
    "X-Shopify-Shop-Domain": "an-shop.myshopify.com",
}
UNPREFIXED = {
    "Shopify-Topic": "orders/create",
    "Shopify-Event-Id": EVENT_ID,
    "Shopify-Webhook-Id": "0d1c2b3a-4e5f-6789-abcd-ef0123456789",
    "Shopify-Shop-Domain": "an-shop.myshopify.com",
}


@pytest.mark.parametrize("headers", [PREFIXED, UNPREFIXED], ids=["x-prefixed", "unprefixed"])
def test_event_id_is_the_key_under_either_spelling(headers: dict[str, str]) -> None:
    delivery = SHOPIFY.delivery(headers)
    assert (delivery.topic, delivery.key, delivery.shop) == (
        "orders/create", EVENT_ID, "an-shop.myshopify.com")
    [event] = SHOPIFY.map(headers, fixture_json("shopify/orders_create.json"))
    assert event.source_event_id == EVENT_ID
    assert event.properties["shop"] == "an-shop.myshopify.com"


def test_webhook_id_is_the_fallback_then_the_resource_key() -> None:
    order = fixture_json("shopify/orders_create.json")
    only_webhook = {"Shopify-Topic": "orders/create", "Shopify-Webhook-Id": "wh-1"}
    assert SHOPIFY.map(only_webhook, order)[0].source_event_id == "wh-1"
    bare = {"X-Shopify-Topic": "orders/create"}
    assert SHOPIFY.map(bare, order)[0].source_event_id == (
        "orders/create:450789469:2008-01-10T11:00:00-05:00")


def test_unprefixed_signature_header_is_read_and_verified() -> None:
    body = fixture_bytes("shopify/orders_create.json")
    headers = {"shopify-hmac-sha256": base64_hmac(SECRETS["shopify"], body)}
    signature = SHOPIFY.signature(headers)
    verify_base64_hmac(SECRETS["shopify"], body, signature, "Shopify-Hmac-Sha256")
    assert SHOPIFY.signature({"X-Shopify-Hmac-Sha256": "abc"}) == "abc"


def test_duplicate_deliveries_of_one_event_are_stored_once(
    settings: Settings, session: Session
) -> None:
    """Two deliveries of one event (new webhook id each, one per spelling) -> one row."""
    factory = session_factory(settings)
    order = fixture_json("shopify/orders_create.json")
    first = store_once(factory, "shopify", SHOPIFY.map(PREFIXED, order))
    again = store_once(factory, "shopify", SHOPIFY.map(UNPREFIXED, order))
    assert first.new_ids and again.duplicate
    assert again.event_ids == first.event_ids
    assert counts(session)["events"] == 1


def test_http_app_accepts_unprefixed_headers_and_dedupes_on_event_id(
    client: TestClient, session: Session
) -> None:
    body = fixture_bytes("shopify/orders_create.json")
    signature = base64_hmac(SECRETS["shopify"], body)
    first = client.post("/webhooks/shopify", content=body,
                        headers={**UNPREFIXED, "Shopify-Hmac-Sha256": signature})
    again = client.post("/webhooks/shopify", content=body,
                        headers={**PREFIXED, "X-Shopify-Hmac-Sha256": signature})
    assert first.status_code == 202
    assert again.status_code == 200 and again.json()["duplicate"] is True
    run_worker()
    assert counts(session)["events"] == 1
