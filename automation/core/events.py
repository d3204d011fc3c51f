"""Canonical event types and the shape every source turns its payloads into."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

LEAD_CAPTURED = "lead.captured"
CONTACT_UPDATED = "contact.updated"
CHECKOUT_STARTED = "checkout.started"
CART_UPDATED = "cart.updated"
CART_ABANDONED = "cart.abandoned"
ORDER_CREATED = "order.created"
ORDER_PAID = "order.paid"
ORDER_SHIPPED = "order.shipped"
ORDER_DELIVERED = "order.delivered"
ORDER_CANCELLED = "order.cancelled"
ORDER_REFUNDED = "order.refunded"
SEGMENT_ENTERED = "segment.entered"
SEGMENT_EXITED = "segment.exited"
CONTACT_UNSUBSCRIBED = "contact.unsubscribed"

MESSAGE_EVENTS = (
    "message.sent",
    "message.delivered",
    "message.opened",
    "message.clicked",
    "message.replied",
    "message.bounced",
    "message.complained",
    "message.failed",
)
SHOP_EVENTS = (
    LEAD_CAPTURED,
    CONTACT_UPDATED,
    CHECKOUT_STARTED,
    CART_UPDATED,
    ORDER_CREATED,
    ORDER_PAID,
    ORDER_SHIPPED,
    ORDER_DELIVERED,
    ORDER_CANCELLED,
    ORDER_REFUNDED,
)
ORDER_EVENTS = tuple(t for t in SHOP_EVENTS if t.startswith("order."))
CART_EVENTS = (CHECKOUT_STARTED, CART_UPDATED)
ALL_TYPES = frozenset(
    SHOP_EVENTS
    + MESSAGE_EVENTS
    + (CART_ABANDONED, SEGMENT_ENTERED, SEGMENT_EXITED, CONTACT_UNSUBSCRIBED)
)
CHANNELS = ("email", "sms", "zalo", "messenger")
PURPOSES = ("marketing", "transactional")


@dataclass
class ContactData:
    """What a payload tells us about a person; every field optional."""

    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    zalo_user_id: str | None = None
    facebook_psid: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    locale: str | None = None
    timezone: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    # (channel, purpose) -> True granted / False denied
    consents: dict[tuple[str, str], bool] = field(default_factory=dict)
    # Evidence for those consents: how the person chose, on which form, and when.
    consent_method: str | None = None
    consent_form: str | None = None
    consent_at: datetime | None = None

    def is_empty(self) -> bool:
        """True when nothing identifies the person."""
        return not any(
            (self.external_id, self.email, self.phone, self.zalo_user_id, self.facebook_psid)
        )


@dataclass
class CanonicalEvent:
    """One event in our vocabulary, ready to store."""

    type: str
    source_event_id: str
    occurred_at: datetime
    contact: ContactData
    properties: dict[str, Any] = field(default_factory=dict)
