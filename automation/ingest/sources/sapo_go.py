"""Sapo GO (mysapogo.com, Sapo's omnichannel POS): its own payload shape, not Shopify's.

Headers: x-sapo-topic (e.g. `orders/update`), x-sapo-hmac-sha256 (base64 HMAC-SHA256 of
the raw body), x-sapo-tenant-domain (the shop), x-sapo-object-id, x-sapo-order-id,
x-sapo-test, x-event-version. Body: the resource itself, e.g. an order with `id`,
`tenant_id`, `code`, `created_on`, `modified_on`, `issued_on`, `customer_id`,
`customer_data` {name, email (often ""), phone_number, addresses}, `status`,
`payment_status`, `fulfillment_status` and `order_line_items`.

Order events are keyed `order:<id>:<canonical type>`: Sapo GO posts `orders/update` on
every save and may post `orders/paid` for the same change, so one status transition is
one event whatever the topic or the number of edits (as for WooCommerce). Customer events
are keyed on id + `modified_on`. A customer without email is identified by phone.
"""

from __future__ import annotations

from typing import Any

from automation.core import events as ev
from automation.core.events import CanonicalEvent, ContactData
from automation.ingest.sources.base import (
    MAX_ID,
    Ignored,
    clean_email,
    clean_phone,
    currency_code,
    ident,
    line_items,
    minor_units,
    obj,
    optional_ident,
    require,
    split_name,
    text,
    timestamp,
)

# Topics whose name says the transition; orders/create and orders/update read the statuses.
ORDER_TOPICS: dict[str, str | None] = {
    "orders/create": None,
    "orders/update": None,
    "orders/finalized": ev.ORDER_CREATED,
    "orders/paid": ev.ORDER_PAID,
    "orders/fulfilled": ev.ORDER_SHIPPED,
    "orders/received": ev.ORDER_DELIVERED,
    "orders/cancelled": ev.ORDER_CANCELLED,
}
CUSTOMER_TOPICS = ("customers/create", "customers/update")
TOPICS = frozenset([*ORDER_TOPICS, *CUSTOMER_TOPICS])
SHIPPED = ("shipped", "delivering", "partial_shipped")
DELIVERED = ("received", "delivered")


def is_sapo_go(payload: Any) -> bool:
    """True for a Sapo GO body (it carries `tenant_id`; Sapo Web's Shopify-like body does not)."""
    return isinstance(payload, dict) and "tenant_id" in payload


def parse(topic: str, payload: Any) -> list[CanonicalEvent]:
    """One Sapo GO order or customer body -> one canonical event."""
    data = obj(payload, "body")
    if topic in CUSTOMER_TOPICS:
        return [customer_event(topic, data)]
    if topic not in ORDER_TOPICS:
        raise Ignored(f"unknown topic {topic}")
    type_ = ORDER_TOPICS[topic] or order_type(data)
    if type_ is None:
        raise Ignored("draft order (a quote): it becomes an order when finalized")
    return [order_event(type_, data)]


def order_type(data: dict[str, Any]) -> str | None:
    """The canonical type an order's statuses amount to (the furthest step reached).

    None for a draft: Sapo GO drafts are quotes, confirmed (`finalized`) or dropped later.
    """
    status = (text(data.get("status")) or "").lower()
    shipping = (text(data.get("fulfillment_status")) or "").lower()
    if status == "draft":
        return None
    if status == "cancelled":
        return ev.ORDER_CANCELLED
    if status == "completed" or shipping in DELIVERED:
        return ev.ORDER_DELIVERED
    if shipping in SHIPPED:
        return ev.ORDER_SHIPPED
    if (text(data.get("payment_status")) or "").lower() == "paid":
        return ev.ORDER_PAID
    return ev.ORDER_CREATED


def order_event(type_: str, data: dict[str, Any]) -> CanonicalEvent:
    """A canonical order event from a Sapo GO order."""
    order_id = ident(require(data, "id", "id"), "id")
    currency = currency_code(data.get("currency"), "currency")
    placed = data.get("issued_on") or data.get("created_on")
    raw_items = data.get("order_line_items")
    if isinstance(raw_items, list):  # line_items() names anything else as a bad field
        raw_items = [
            {**item, "name": item.get("variant_name") or item.get("product_name")}
            if isinstance(item, dict) else item
            for item in raw_items
        ]
    properties: dict[str, Any] = {
        "order_id": order_id,
        "order_number": text(data.get("code"), MAX_ID),
        "total": minor_units(data.get("total"), currency, "total"),
        "currency": currency,
        "status": text(data.get("status"), 32),
        "payment_status": text(data.get("payment_status"), 32),
        "fulfillment_status": text(data.get("fulfillment_status"), 32),
        "items": line_items(raw_items, currency, "order_line_items"),
        "checkout_token": None,
        "placed_at": timestamp(placed, "issued_on").isoformat(),
    }
    return CanonicalEvent(
        type=type_,
        source_event_id=f"order:{order_id}:{type_}",
        occurred_at=timestamp(data.get("modified_on") or data.get("created_on"), "modified_on"),
        contact=buyer(data),
        properties=properties,
    )


def customer_event(topic: str, data: dict[str, Any]) -> CanonicalEvent:
    """contact.updated for customers/create and customers/update."""
    customer_id = ident(require(data, "id", "id"), "id")
    modified = text(data.get("modified_on")) or text(data.get("created_on")) or ""
    return CanonicalEvent(
        type=ev.CONTACT_UPDATED,
        source_event_id=f"customer:{customer_id}:{modified}",
        occurred_at=timestamp(data.get("modified_on") or data.get("created_on"), "modified_on"),
        contact=person(data, customer_id),
        properties={"customer_id": customer_id},
    )


def buyer(data: dict[str, Any]) -> ContactData:
    """The order's customer (customer_id + customer_data), else its addresses' phone."""
    customer = data.get("customer_data")
    customer = customer if isinstance(customer, dict) else {}
    contact = person(customer, optional_ident(data.get("customer_id"), "customer_id"))
    for key in ("shipping_address", "billing_address"):
        address = data.get(key)
        if isinstance(address, dict):
            contact.phone = contact.phone or clean_phone(address.get("phone_number"))
            contact.email = contact.email or clean_email(address.get("email"))
    return contact


def person(customer: dict[str, Any], customer_id: str | None) -> ContactData:
    """ContactData from a Sapo GO customer: email if any, else the phone identifies them."""
    first, last = split_name(customer.get("name"))
    phone = clean_phone(customer.get("phone_number"))
    addresses = customer.get("addresses")
    for address in addresses if isinstance(addresses, list) else []:
        if isinstance(address, dict):
            phone = phone or clean_phone(address.get("phone_number"))
    return ContactData(
        external_id=customer_id,
        email=clean_email(customer.get("email")),
        phone=phone,
        first_name=first,
        last_name=last,
    )
