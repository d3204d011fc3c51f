"""Everything held about one person, as JSON-able data (`mactl contacts export`).

Rows are exported column by column from the models, so a column added later (consent
evidence, say) is exported without touching this module.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from automation.core.clock import now
from automation.core.models import (
    Base,
    Cart,
    Consent,
    Contact,
    ContactIdentity,
    Enrollment,
    Event,
    Message,
    MessageEvent,
    Order,
    Segment,
    SegmentMembership,
    Sequence,
    Suppression,
)
from automation.core.vocabulary import CONSENT_CHANNELS
from automation.privacy.hashing import address_hash, contact_addresses
from automation.segments.evaluate import matches
from automation.segments.nodes import REACH_KINDS, ReachCond


def row(obj: Base) -> dict[str, Any]:
    """One model row as {column: value} (bytes decoded as UTF-8, replacing bad bytes)."""
    out: dict[str, Any] = {}
    for column in obj.__table__.columns:
        value = getattr(obj, column.key)
        out[column.key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    return out


def export_contact(
    session: Session, contact: Contact, at: datetime | None = None
) -> dict[str, Any]:
    """Every row held about ``contact``, grouped by kind, plus its reachability per channel."""
    cid = contact.id
    addresses = contact_addresses(contact)
    message_ids = select(Message.id).where(Message.contact_id == cid)

    def rows(stmt: Any) -> list[dict[str, Any]]:
        return [row(r) for r in session.scalars(stmt)]

    memberships = session.execute(
        select(SegmentMembership, Segment.key)
        .join(Segment, Segment.id == SegmentMembership.segment_id)
        .where(SegmentMembership.contact_id == cid)
        .order_by(SegmentMembership.id)
    )
    enrollments = session.execute(
        select(Enrollment, Sequence.key)
        .join(Sequence, Sequence.id == Enrollment.sequence_id)
        .where(Enrollment.contact_id == cid)
        .order_by(Enrollment.id)
    )
    hashes = [address_hash(a) for a in addresses]
    return {
        "exported_at": at or now(),
        "contact": row(contact),
        "identities": rows(
            select(ContactIdentity)
            .where(ContactIdentity.contact_id == cid)
            .order_by(ContactIdentity.id)
        ),
        "attributes": contact.attributes or {},
        "consents": rows(select(Consent).where(Consent.contact_id == cid).order_by(Consent.id)),
        "events": rows(select(Event).where(Event.contact_id == cid).order_by(Event.id)),
        "messages": rows(select(Message).where(Message.contact_id == cid).order_by(Message.id)),
        "message_events": rows(
            select(MessageEvent)
            .where(MessageEvent.message_id.in_(message_ids))
            .order_by(MessageEvent.id)
        ),
        "enrollments": [{**row(e), "sequence": key} for e, key in enrollments],
        "memberships": [{**row(m), "segment": key} for m, key in memberships],
        "orders": rows(select(Order).where(Order.contact_id == cid).order_by(Order.id)),
        "carts": rows(select(Cart).where(Cart.contact_id == cid).order_by(Cart.id)),
        "suppressions": rows(
            select(Suppression)
            .where(or_(Suppression.address.in_(addresses), Suppression.address.in_(hashes)))
            .order_by(Suppression.id)
        ),
        "reachability": reachability(session, cid, at or now()),
    }


def reachability(session: Session, contact_id: int, at: datetime) -> dict[str, dict[str, bool]]:
    """{channel: {reachable, has_address, suppressed}} as the segment rules see it."""
    return {
        channel: {
            kind: matches(session, ReachCond(kind, (channel,)), contact_id, at)
            for kind in REACH_KINDS
        }
        for channel in CONSENT_CHANNELS
    }
