"""Haravan: Shopify-family payloads, X-Haravan-* headers, the shop in X-Haravan-Org-Id.

Haravan posts the Shopify topics plus `orders/updated` on every save of an order. An
`orders/updated` delivery becomes the event its statuses amount to (cancelled, refunded,
delivered, shipped, paid), keyed `order:<id>:<type>` so that repeated saves in one status
store one event; a save that moves nothing is ignored (`orders/create` covers creation).
Haravan sends no delivery id. Its subscription check is a GET answered in haravan_verify.
"""

from __future__ import annotations

from typing import Any, ClassVar

from automation.core import events as ev
from automation.core.events import CanonicalEvent
from automation.ingest.sources.base import Ignored, ident, obj, require, text
from automation.ingest.sources.shopify import TOPICS, ShopifyFamily

UPDATED = "orders/updated"


class HaravanSource(ShopifyFamily):
    """Haravan webhooks: X-Haravan-Topic, X-Haravan-Hmacsha256, X-Haravan-Org-Id."""

    name: ClassVar[str] = "haravan"
    secret_setting: ClassVar[str] = "HARAVAN_WEBHOOK_SECRET"
    signature_header: ClassVar[str] = "X-Haravan-Hmacsha256"
    topic_header: ClassVar[str | None] = "X-Haravan-Topic"
    shop_headers: ClassVar[tuple[str, ...]] = ("X-Haravan-Org-Id",)

    def handles(self, topic: str) -> bool:
        """The Shopify-family topics and orders/updated."""
        return topic in TOPICS or topic == UPDATED

    def parse(self, topic: str, payload: Any) -> list[CanonicalEvent]:
        """orders/updated by its statuses; every other topic as Shopify's."""
        if topic != UPDATED:
            return super().parse(topic, payload)
        data = obj(payload, "body")
        order_id = ident(require(data, "id", "id"), "id")
        type_ = order_type(data)
        if type_ is None:
            raise Ignored("order saved without a status change")
        event = self._order(topic, type_, data)
        event.source_event_id = f"order:{order_id}:{type_}"
        return [event]


def order_type(data: dict[str, Any]) -> str | None:
    """The furthest step a Haravan order has reached, or None while it is only placed."""
    financial = (text(data.get("financial_status")) or "").lower()
    shipping = (text(data.get("fulfillment_status")) or "").lower()
    if (text(data.get("cancelled_status")) or "").lower() == "cancelled" or data.get(
        "cancelled_at"
    ):
        return ev.ORDER_CANCELLED
    if financial == "refunded":
        return ev.ORDER_REFUNDED
    if delivered(data.get("fulfillments")):
        return ev.ORDER_DELIVERED
    if shipping in ("fulfilled", "partial"):
        return ev.ORDER_SHIPPED
    if financial == "paid":
        return ev.ORDER_PAID
    return None


def delivered(fulfillments: Any) -> bool:
    """True when a fulfillment reports delivery (carrier_status_code / shipment_status)."""
    if not isinstance(fulfillments, list):
        return False
    return any(
        isinstance(item, dict)
        and "delivered"
        in ((text(item.get("carrier_status_code")) or "").lower(),
            (text(item.get("shipment_status")) or "").lower())
        for item in fulfillments
    )


HARAVAN = HaravanSource()
