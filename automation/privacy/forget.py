"""Erase one person's personal data and keep anonymous aggregates (`mactl contacts forget`).

Erased: addresses, names, attributes, tags, identities, consents; message addresses,
bodies and links; personal keys and addresses in event properties, message-event
payloads and enrollment contexts; cart recovery links; raw inbox payloads that name
one of the person's addresses. Kept: the contact row as an anonymous id with its order
rollups, orders, attributions, goal conversions, segment memberships and message
statuses (counts and revenue stay right). Each address is replaced on the suppression
list by its keyed hash (automation.privacy.hashing), so it is never messaged again, and
an Erasure row records that the request was done and when.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from automation.core.clock import now
from automation.core.db import dialect_insert
from automation.core.models import (
    Cart,
    Consent,
    Contact,
    ContactIdentity,
    Enrollment,
    Event,
    Message,
    MessageEvent,
    Suppression,
)
from automation.core.models_inbox import InboxDelivery
from automation.core.models_privacy import Erasure
from automation.core.vocabulary import CONSENT_CHANNELS
from automation.privacy.hashing import ERASED, address_hash, contact_addresses
from automation.privacy.scrub import phone_forms, redact, scrub

BATCH = 500


def forget_contact(session: Session, contact: Contact, at: datetime | None = None) -> Erasure:
    """Erase ``contact``'s personal data in the caller's transaction; the Erasure record."""
    when = at or now()
    addresses = contact_addresses(contact)
    needles = sorted({*addresses, *phone_forms(contact.phone)}, key=len, reverse=True)
    counts: Counter[str] = Counter()
    _suppress_hashes(session, addresses, counts)
    counts["identities"] = _delete(session, ContactIdentity, ContactIdentity.contact_id, contact.id)
    counts["consents"] = _delete(session, Consent, Consent.contact_id, contact.id)
    for message in session.scalars(select(Message).where(Message.contact_id == contact.id)):
        message.address, message.rendered, message.links = None, {}, {}
        message.error = redact(message.error, needles) if message.error else None
        for result in session.scalars(
            select(MessageEvent).where(MessageEvent.message_id == message.id)
        ):
            result.payload = scrub(result.payload or {}, needles)
            counts["message_events"] += 1
        counts["messages"] += 1
    for event in session.scalars(select(Event).where(Event.contact_id == contact.id)):
        event.payload = scrub(event.payload or {}, needles)
        counts["events"] += 1
    for enrollment in session.scalars(
        select(Enrollment).where(Enrollment.contact_id == contact.id)
    ):
        enrollment.context = scrub(enrollment.context or {}, needles)
        counts["enrollments"] += 1
    for cart in session.scalars(select(Cart).where(Cart.contact_id == contact.id)):
        cart.recovery_url = None
        counts["carts"] += 1
    counts["inbox"] = _erase_inbox(session, needles)
    _anonymise(contact)
    erasure = Erasure(contact_id=contact.id, erased_at=when, counts=dict(sorted(counts.items())))
    session.add(erasure)
    session.flush()
    return erasure


def _anonymise(contact: Contact) -> None:
    for name in ("email", "phone", "zalo_user_id", "facebook_psid", "first_name", "last_name"):
        setattr(contact, name, None)
    contact.attributes, contact.tags, contact.last_inbound_at = {}, [], {}


def _delete(session: Session, model: type, column: object, contact_id: int) -> int:
    result = session.execute(delete(model).where(column == contact_id))  # type: ignore[arg-type]
    return int(getattr(result, "rowcount", 0) or 0)


def _suppress_hashes(session: Session, addresses: list[str], counts: Counter[str]) -> None:
    """Replace the plain suppression rows of ``addresses`` by keyed-hash rows on every channel."""
    if not addresses:
        return
    session.execute(delete(Suppression).where(Suppression.address.in_(addresses)))
    rows = [
        {
            "channel": channel,
            "address": address_hash(address),
            "reason": ERASED,
            "scope": "all",
            "created_at": now(),
        }
        for address in addresses
        for channel in CONSENT_CHANNELS
    ]
    insert = dialect_insert(session)
    session.execute(insert(Suppression).values(rows).on_conflict_do_nothing())
    counts["suppression_hashes"] = len(addresses)


def _erase_inbox(session: Session, needles: list[str]) -> int:
    """Blank the raw payloads that contain one of ``needles``; they stay as dedupe keys."""
    if not needles:
        return 0
    wanted = [n.lower().encode() for n in needles]
    erased, last = 0, 0
    while True:
        batch = session.execute(
            select(InboxDelivery.id, InboxDelivery.body)
            .where(InboxDelivery.id > last)
            .order_by(InboxDelivery.id)
            .limit(BATCH)
        ).all()
        if not batch:
            return erased
        last = batch[-1].id
        hits = [r.id for r in batch if any(n in bytes(r.body).lower() for n in wanted)]
        for delivery in session.scalars(select(InboxDelivery).where(InboxDelivery.id.in_(hits))):
            delivery.body, delivery.headers = b"", {}
            if delivery.status != "mapped":  # nothing left to map or replay
                delivery.status = "ignored"
            delivery.reason = "erased on request"
            erased += 1
