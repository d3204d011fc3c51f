"""WooCommerce: order and customer webhooks, mapped by order status.

WooCommerce fires `order.updated` on every save of an order, and its
X-WC-Webhook-Delivery-ID is new for every attempt, so an order event's stable id is the
status transition itself: `order:<id>:<canonical type>` (one order.paid per order).
"""

from __future__ import annotations

from typing import Any, ClassVar

from automation.core import events as ev
from automation.core.events import CanonicalEvent, ContactData
from automation.ingest.sources.base import (
    MAX_ID,
    Ignored,
    Source,
    clean_email,
    clean_phone,
    currency_code,
    ident,
    line_items,
    minor_units,
    obj,
    optional_ident,
    person_name,
    require,
    text,
    timestamp,
)

STATUS_TYPES = {
    "pending": ev.ORDER_CREATED,
    "on-hold": ev.ORDER_CREATED,
    "processing": ev.ORDER_PAID,
    "completed": ev.ORDER_DELIVERED,
    "cancelled": ev.ORDER_CANCELLED,
    "refunded": ev.ORDER_REFUNDED,
}
ORDER_TOPICS = ("order.created", "order.updated", "order.deleted", "order.restored")
CUSTOMER_TOPICS = ("customer.created", "customer.updated")


class WooCommerceSource(Source):
    """WooCommerce REST webhooks (API v3 resource bodies)."""

    name: ClassVar[str] = "woocommerce"
    secret_setting: ClassVar[str] = "WOOCOMMERCE_WEBHOOK_SECRET"
    signature_header: ClassVar[str] = "X-WC-Webhook-Signature"
    topic_header: ClassVar[str | None] = "X-WC-Webhook-Topic"
    delivery_header: ClassVar[str | None] = None  # per attempt, useless for dedupe

    def handles(self, topic: str) -> bool:
        """Order and customer topics."""
        return topic in ORDER_TOPICS or topic in CUSTOMER_TOPICS

    def parse(self, topic: str, payload: Any) -> list[CanonicalEvent]:
        """One canonical event per webhook; statuses we do not act on are ignored."""
        data = obj(payload, "body")
        if topic in CUSTOMER_TOPICS:
            return [customer_event(topic, data)]
        order_id = ident(require(data, "id", "id"), "id")
        if topic == "order.deleted":
            type_ = ev.ORDER_CANCELLED
        else:
            status = str(require(data, "status", "status")).lower()
            if status not in STATUS_TYPES:
                raise Ignored(f"order status {status}")
            type_ = STATUS_TYPES[status]
        return [order_event(order_id, type_, data)]


def order_event(order_id: str, type_: str, data: dict[str, Any]) -> CanonicalEvent:
    """A canonical order event; totals are net of refunds already made."""
    currency = currency_code(data.get("currency"), "currency")
    total = minor_units(data.get("total"), currency, "total")
    refunds = data.get("refunds")
    if isinstance(refunds, list):
        for index, raw in enumerate(refunds):
            refund = obj(raw, f"refunds[{index}]")
            total -= abs(minor_units(refund.get("total"), currency, f"refunds[{index}].total"))
    properties: dict[str, Any] = {
        "order_id": order_id,
        "order_number": text(data.get("number"), MAX_ID) or order_id,
        "currency": currency,
        "status": text(data.get("status")),
        "items": line_items(data.get("line_items"), currency),
        "checkout_token": None,
        "placed_at": gmt(data, "date_created").isoformat(),
    }
    if "total" in data:
        properties["total"] = max(total, 0)
    return CanonicalEvent(
        type=type_,
        source_event_id=f"order:{order_id}:{type_}",
        occurred_at=gmt(data, "date_modified"),
        contact=order_contact(data),
        properties=properties,
    )


def customer_event(topic: str, data: dict[str, Any]) -> CanonicalEvent:
    """contact.updated for customer.created / customer.updated."""
    customer_id = ident(require(data, "id", "id"), "id")
    billing = data.get("billing")
    billing = billing if isinstance(billing, dict) else {}
    contact = ContactData(
        external_id=customer_id,
        email=clean_email(data.get("email")) or clean_email(billing.get("email")),
        phone=clean_phone(billing.get("phone"), text(billing.get("country"))),
        first_name=person_name(data.get("first_name")) or person_name(billing.get("first_name")),
        last_name=person_name(data.get("last_name")) or person_name(billing.get("last_name")),
    )
    modified = text(data.get("date_modified_gmt")) or text(data.get("date_modified")) or ""
    return CanonicalEvent(
        type=ev.CONTACT_UPDATED,
        source_event_id=f"{topic}:{customer_id}:{modified}",
        occurred_at=gmt(data, "date_modified"),
        contact=contact,
        properties={"customer_id": customer_id},
    )


def order_contact(data: dict[str, Any]) -> ContactData:
    """The buyer from the billing block; customer_id 0 means a guest (no external id)."""
    billing = data.get("billing")
    billing = billing if isinstance(billing, dict) else {}
    return ContactData(
        external_id=optional_ident(data.get("customer_id"), "customer_id"),
        email=clean_email(billing.get("email")),
        phone=clean_phone(billing.get("phone"), text(billing.get("country"))),
        first_name=person_name(billing.get("first_name")),
        last_name=person_name(billing.get("last_name")),
    )


def gmt(data: dict[str, Any], key: str) -> Any:
    """`<key>_gmt` (naive UTC in WooCommerce) else `<key>` (site local: DEFAULT_TIMEZONE)."""
    if data.get(f"{key}_gmt"):
        return timestamp(data[f"{key}_gmt"], f"{key}_gmt", assume_utc=True)
    return timestamp(data.get(key), key)
