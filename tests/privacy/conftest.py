"""Privacy fixtures: the delivery tests' loopback providers, and one person with history."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.orm import Session

from automation.core.models import (
    Cart,
    Consent,
    ContactIdentity,
    Enrollment,
    Event,
    Message,
    MessageEvent,
    Order,
    Segment,
    SegmentMembership,
    Sequence,
    SequenceVersion,
    Suppression,
)
from automation.core.models_inbox import InboxDelivery
from tests.delivery.conftest import dsettings, esms_server, smtp_sink, zns_server  # noqa: F401
from tests.delivery.helpers import contact

EMAIL, PHONE, LOCAL_PHONE = "lan1@example.vn", "+84912340001", "0912340001"
AT = datetime(2026, 10, 1, 3, 0, tzinfo=UTC)


@pytest.fixture
def person(session: Session) -> dict[str, int]:
    """Contact 'Lan' with an identity, consent, events, a message, an order, a cart, an
    opt-out, a raw webhook naming her, and a stranger's raw webhook; returns row ids."""
    lan = contact(session, 1, attributes={"tinh": "Hà Nội"}, tags=["vip"])
    lan.orders_count, lan.total_spent = 1, 1_250_000
    session.add(ContactIdentity(contact_id=lan.id, source="shopify", external_id="cust-42"))
    session.add(
        Consent(
            contact_id=lan.id,
            channel="email",
            purpose="marketing",
            status="granted",
            source="form:dang-ky",
        )
    )
    event = Event(
        source="shopify",
        source_event_id="o-1",
        type="order.created",
        contact_id=lan.id,
        occurred_at=AT,
        payload={
            "properties": {
                "total": 1_250_000,
                "email": EMAIL,
                "shipping_address": {"address1": "12 Hàng Bạc", "city": "Hà Nội"},
                "items": [{"title": "Áo dài lụa", "quantity": 1}],
                "note": f"gọi {LOCAL_PHONE} trước khi giao",
            }
        },
    )
    message = Message(
        step_key="s1",
        contact_id=lan.id,
        channel="email",
        purpose="marketing",
        template="t/promo",
        address=EMAIL,
        status="delivered",
        attempts=1,
        fallback=[],
        rendered={"subject": "[QC] Chào Lan", "text": f"Chào chị Lan ({EMAIL})"},
        links={"abc": "https://shop.example.vn/cart/recover?t=xyz"},
    )
    order = Order(
        source="shopify",
        external_id="o-1",
        contact_id=lan.id,
        status="paid",
        total=1_250_000,
        placed_at=AT,
    )
    cart = Cart(
        source="shopify",
        external_id="c-1",
        contact_id=lan.id,
        total=1_250_000,
        items=[],
        recovery_url="https://shop.example.vn/cart/recover?t=xyz",
    )
    session.add_all([event, message, order, cart])
    session.add(Suppression(channel="sms", address=PHONE, reason="unsubscribed"))
    mine = InboxDelivery(
        source="shopify",
        topic="orders/create",
        dedupe_key="d-1",
        status="mapped",
        headers={"x-shopify-topic": "orders/create"},
        body=f'{{"id": 1, "email": "{EMAIL.upper()}", "phone": "{LOCAL_PHONE}"}}'.encode(),
    )
    other = InboxDelivery(
        source="shopify",
        topic="orders/create",
        dedupe_key="d-2",
        status="mapped",
        headers={},
        body=b'{"id": 2, "email": "minh@example.vn"}',
    )
    session.add_all([mine, other])
    session.flush()
    sequence = Sequence(key="cart_recovery")
    segment = Segment(
        key="vip", name="VIP", rules={"field": "total_spent", "gte": 1}, definition_hash="x"
    )
    session.add_all([sequence, segment])
    session.flush()
    version = SequenceVersion(
        sequence_id=sequence.id, version=1, definition={}, definition_hash="x"
    )
    session.add(version)
    session.flush()
    enrollment = Enrollment(
        sequence_id=sequence.id,
        version_id=version.id,
        contact_id=lan.id,
        context={"email": EMAIL, "cart_total": 1_250_000},
    )
    session.add_all([enrollment, SegmentMembership(segment_id=segment.id, contact_id=lan.id)])
    session.add(
        MessageEvent(
            message_id=message.id,
            type="delivered",
            provider="mailgun",
            provider_event_id="ev-1",
            payload={"recipient": EMAIL, "event": "delivered"},
        )
    )
    session.commit()
    return {
        "contact": lan.id,
        "event": event.id,
        "message": message.id,
        "order": order.id,
        "cart": cart.id,
        "inbox_mine": mine.id,
        "inbox_other": other.id,
        "enrollment": enrollment.id,
    }
