"""The render context of an outbox row: contact, trigger event, order / cart, shop, links.

Templates see plain dicts only (never ORM objects or settings), so the sandbox has
nothing to reach secrets through.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation import links
from automation.core.clock import ensure_utc, now
from automation.core.config import Settings, get_settings
from automation.core.db import one_of
from automation.core.models import Contact, Enrollment, Event, Message
from automation.core.vocabulary import ADDRESS_FIELD


def contact_view(contact: Contact, settings: Settings | None = None) -> dict[str, Any]:
    """What templates may know about a contact."""
    settings = settings or get_settings()
    first, last = contact.first_name or "", contact.last_name or ""
    return {
        "id": contact.id,
        "first_name": contact.first_name,
        "last_name": contact.last_name,
        "full_name": " ".join(p for p in (last, first) if p) or None,
        "email": contact.email,
        "phone": contact.phone,
        "attributes": dict(contact.attributes or {}),
        "tags": list(contact.tags or []),
        "orders_count": contact.orders_count or 0,
        "total_spent": contact.total_spent or 0,
        "timezone": contact.timezone or settings.default_timezone,
        "locale": contact.locale or settings.default_locale,
    }


def context_events(
    session: Session, messages: list[Message]
) -> dict[int, tuple[Enrollment, list[Event]]]:
    """enrollment id -> (enrollment, [trigger event, event that woke the last wait_until]).

    The shipped notice of an order needs the ``order.shipped`` event's tracking link, not
    only the ``order.created`` that started the enrollment. Two queries per batch.
    """
    ids = {m.enrollment_id for m in messages if m.enrollment_id is not None}
    if not ids:
        return {}
    found = session.scalars(select(Enrollment).where(one_of(session, Enrollment.id, ids)))
    enrollments = {e.id: e for e in found}
    wanted = {eid: _event_ids(enr) for eid, enr in enrollments.items()}
    all_ids = {i for chain in wanted.values() for i in chain}
    events = (
        {e.id: e for e in session.scalars(select(Event).where(one_of(session, Event.id, all_ids)))}
        if all_ids
        else {}
    )
    return {
        eid: (enr, [events[i] for i in wanted[eid] if i in events])
        for eid, enr in enrollments.items()
    }


def _event_ids(enrollment: Enrollment) -> list[int]:
    woken = (enrollment.context or {}).get("wait_until_event_id")
    chain = [enrollment.trigger_event_id, woken if isinstance(woken, int) else None]
    return [i for i in dict.fromkeys(chain) if i is not None]


def build_context(
    message: Message,
    contact: Contact,
    enrollment: Enrollment | None,
    events: list[Event],
    settings: Settings | None = None,
) -> dict[str, Any]:
    """The template context for one message (see README "Templates").

    ``event`` holds the properties of the trigger event, overlaid by those of the event
    that woke the latest ``wait_until`` (same order: tracking link, carrier).
    """
    settings = settings or get_settings()
    props: dict[str, Any] = {}
    for event in events:
        props.update((event.payload or {}).get("properties") or {})
    extra: dict[str, Any] = dict(enrollment.context or {}) if enrollment else {}
    ctx: dict[str, Any] = {
        "contact": contact_view(contact, settings),
        "event": props,
        "context": extra,
        "shop": {"name": settings.shop_name, "url": settings.shop_url},
        "unsubscribe_url": links.unsubscribe_url(message.id, settings),
        "now": now(),
        "timezone": contact.timezone or settings.default_timezone,
    }
    etype = events[0].type if events else ""
    if etype.startswith("order.") or "order_id" in props:
        ctx["order"] = props
    elif isinstance(extra.get("order"), dict):
        ctx["order"] = extra["order"]
    if etype.startswith(("cart.", "checkout.")) or "cart_id" in props:
        ctx["cart"] = props
    elif isinstance(extra.get("cart"), dict):
        ctx["cart"] = extra["cart"]
    return ctx


def address_for(channel: str, contact: Contact) -> str | None:
    """The contact's address on ``channel`` (email, E.164 phone, Zalo user id, PSID)."""
    value = getattr(contact, ADDRESS_FIELD.get(channel, ""), None)
    return value if isinstance(value, str) and value else None


def messenger_window_open(contact: Contact, at: datetime | None = None) -> bool:
    """True when the contact wrote to the Page in the last 24 hours."""
    last = (contact.last_inbound_at or {}).get("messenger")
    if not last:
        return False
    try:
        when = ensure_utc(datetime.fromisoformat(str(last)))
    except ValueError:
        return False
    return (at or now()) - when < timedelta(hours=24)
