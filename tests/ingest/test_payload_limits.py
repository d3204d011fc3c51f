"""Issue 11 defect 2: values that do not fit a column never reach the tables, named by
field. Native events are refused with 422; shop deliveries answer 202 and are kept
quarantined with the reason (issue 9: shops drop or disable webhooks that keep failing),
and the worker stores nothing from them. Both backends."""

from __future__ import annotations

import contextlib
import copy
from typing import Any

import pytest
from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.models import Contact
from automation.core.models_inbox import InboxDelivery
from automation.ingest.sources import SAPO, SHOPIFY, WooCommerceSource
from automation.ingest.sources.base import PayloadError, minor_units
from tests.ingest.helpers import (
    counts,
    fixture_json,
    native_event,
    post_native,
    post_shop,
    post_woo,
    settled,
)
from tests.ingest.shop_helpers import post_signed, variant

LONG_ID = "9" * 129


def shop_order(**changes: Any) -> dict[str, Any]:
    """The Shopify fixture order with top-level fields replaced."""
    return variant("shopify/orders_create.json", **changes)


def assert_quarantined(response: Response, session: Session, field: str) -> str:
    """202; once the worker ran, the inbox row is quarantined naming the field, and no
    event, order or contact was stored. Returns the reason."""
    row = settled(session, response)
    reason = row.reason or ""
    assert row.status == "quarantined" and reason.startswith(f"{field}: "), reason
    stored = counts(session)
    assert (stored["events"], stored["orders"], stored["contacts"]) == (0, 0, 0), stored
    return reason


@pytest.mark.parametrize(
    ("platform", "changes", "field"),
    [
        ("shopify", {"id": LONG_ID}, "id"),
        ("haravan", {"id": LONG_ID}, "id"),
        ("shopify", {"total_price": 10**30, "current_total_price": None}, "total_price"),
        ("haravan", {"total_price": 2**63}, "total_price"),
        ("sapo", {"total_price": "1e25"}, "total_price"),
        ("sapo", {"total_price": "1e30"}, "total_price"),
        ("shopify", {"created_at": "0001-01-01T00:00:00+07:00"}, "created_at"),
    ],
)
def test_shopify_family_out_of_range_values_are_quarantined_naming_the_field(
    client: TestClient, session: Session, platform: str, changes: dict[str, Any], field: str
) -> None:
    response = post_shop(client, shop_order(**changes), "orders/create", platform)
    assert_quarantined(response, session, field)


def test_nested_ids_and_quantities_are_bounded(client: TestClient, session: Session) -> None:
    order = shop_order()
    order["customer"]["id"] = LONG_ID
    assert_quarantined(post_shop(client, order, "orders/create"), session, "customer.id")
    order = shop_order(id=1)  # another order: a new delivery, not a redelivery
    order["line_items"][0]["quantity"] = 10**12
    assert_quarantined(post_shop(client, order, "orders/create"), session,
                       "line_items[0].quantity")
    assert counts(session)["inbox"] == 2
    stored = counts(session)
    assert (stored["events"], stored["orders"], stored["contacts"]) == (0, 0, 0), stored


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"id": int(LONG_ID)}, "id"), ({"total": "1e30"}, "total"), ({"total": str(2**63)}, "total"),
     ({"customer_id": LONG_ID}, "customer_id")],
)
def test_woocommerce_out_of_range_values_are_quarantined(
    client: TestClient, session: Session, changes: dict[str, Any], field: str
) -> None:
    order = variant("woocommerce/order_created.json", **changes)
    assert_quarantined(post_woo(client, order), session, field)


def test_an_integer_id_beyond_64_bits_is_read_exactly(
    client: TestClient, session: Session
) -> None:
    """orjson turns integers beyond 64 bits into floats: the reason once said "must be an
    id" for an integer id, and a 20-digit integer id was refused."""
    order = variant("woocommerce/order_created.json", id=int(LONG_ID))
    reason = assert_quarantined(post_woo(client, order), session, "id")
    assert "129 characters" in reason
    order = variant("woocommerce/order_created.json", id=2**64)
    answer = post_woo(client, order).json()
    assert "quarantined" not in answer, answer
    session.expire_all()
    row = session.get(InboxDelivery, answer["inbox_ids"][0])
    assert row is not None and row.status == "mapped", row and row.reason


def test_sapo_go_total_out_of_range_is_quarantined(
    client: TestClient, session: Session
) -> None:
    body = variant("sapo_go/order.json", total="1e25")
    response = post_signed(client, "sapo", body, **{"x-sapo-topic": "orders/create"})
    assert "out of range" in assert_quarantined(response, session, "total")


def test_native_total_beyond_the_limit_is_422(client: TestClient, session: Session) -> None:
    event = native_event("n1", "order.paid", {"phone": "0912345678"},
                         {"order_id": "1", "total": 2**63})
    response = post_native(client, event)
    assert response.status_code == 422 and response.json()["field"] == "properties.total"
    assert set(counts(session).values()) == {0}


def test_long_names_are_cut_to_the_column_and_stored(
    client: TestClient, session: Session
) -> None:
    order = shop_order()
    order["customer"]["first_name"] = "Mai" * 200
    assert post_shop(client, order, "orders/create").status_code == 202
    contact = session.scalars(select(Contact)).one()
    assert contact.first_name is not None and len(contact.first_name) == 120


def test_an_email_longer_than_its_column_is_dropped_not_stored(
    client: TestClient, session: Session
) -> None:
    order = shop_order(email="a" * 330 + "@example.vn")
    order["customer"]["email"] = order["email"]
    assert post_shop(client, order, "orders/create").status_code == 202
    contact = session.scalars(select(Contact)).one()
    assert contact.email is None  # the customer id still identifies the buyer


def test_amount_limit_and_precision() -> None:
    assert minor_units("1000000000000000", "VND", "total") == 10**15
    assert minor_units("199.995", "USD", "total") == 20000
    with pytest.raises(PayloadError) as error:
        minor_units("1e16", "VND", "total")
    assert error.value.field == "total" and "out of range" in str(error.value)
    with pytest.raises(PayloadError):
        minor_units("1e999999999", "VND", "total")  # once an InvalidOperation (a 500)


def test_mapping_never_raises_anything_but_payload_errors() -> None:
    """A sweep of hostile values through the pure mappings: PayloadError or a result."""
    hostile: list[Any] = [LONG_ID, 10**30, 2**63, -(2**63), "1e30", "NaN", "-Infinity", 1e308,
                          "", None, [], {}, True, "2026-13-45", "0001-01-01T00:00:00+07:00"]
    base = fixture_json("shopify/orders_create.json")
    go = fixture_json("sapo_go/order.json")
    woo = WooCommerceSource()
    cases = [(SHOPIFY, "orders/create", base, ("id", "total_price", "created_at", "currency")),
             (SAPO, "orders/update", go, ("id", "total", "issued_on", "customer_id")),
             (woo, "order.created", fixture_json("woocommerce/order_created.json"),
              ("id", "total", "date_created_gmt", "customer_id"))]
    for source, topic, body, keys in cases:
        for key in keys:
            for value in hostile:
                data = copy.deepcopy(body)
                data[key] = value
                with contextlib.suppress(PayloadError):
                    source.parse(topic, data)
