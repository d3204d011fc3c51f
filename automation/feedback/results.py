"""Feedback loop: provider callbacks and our tracking links -> message status -> events.

Plain functions taking a Session (the HTTP routes in automation/ingest/ only verify and
parse, then call these). Each result is stored once:

- ``message_events`` row, unique on (provider, provider_event_id): a redelivered callback
  changes nothing;
- ``Message.status`` moves forward only (``STATUS_RANK``); ``bounced`` and ``failed`` are
  terminal; an engaged message (opened or further) is never turned into a bounce;
- one canonical event (``message.delivered`` ...) through automation.core.eventlog.record_event
  with the contact id, so process_event feeds segments and sequence exits / wait_until.

Opt-outs (``unsubscribe``) deny marketing consent, add a suppression, skip the contact's
queued marketing messages on that channel and emit ``contact.unsubscribed``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from automation.contacts.identity import record_consent
from automation.contacts.reachability import insert_ignore, suppress
from automation.core import outbox
from automation.core.clock import now
from automation.core.eventlog import record_event
from automation.core.events import CONTACT_UNSUBSCRIBED
from automation.core.models import Consent, Contact, Message, MessageEvent
from automation.core.vocabulary import (
    CONSENT_CHANNEL,
    MARKETING,
    STATUS_RANK,
    TERMINAL_STATUSES,
    Status,
)
from automation.feedback.optout import exit_marketing

log = logging.getLogger(__name__)

#: Message event type -> canonical event type (None: stored on the message only).
CANONICAL: dict[str, str | None] = {
    "sent": "message.sent",
    "delivered": "message.delivered",
    "read": "message.opened",
    "opened": "message.opened",
    "clicked": "message.clicked",
    "replied": "message.replied",
    "bounced": "message.bounced",
    "complained": "message.complained",
    "failed": "message.failed",
    "unsubscribed": None,  # unsubscribe() emits contact.unsubscribed itself
}
#: Canonical events emitted once per message; the others once per provider event.
ONCE_PER_MESSAGE = frozenset(
    {"message.sent", "message.delivered", "message.opened", "message.bounced",
     "message.complained", "message.failed"}
)


@dataclass
class FeedbackResult:
    """What one call stored: the message event (None if duplicate) and new event ids."""

    message_event: MessageEvent | None = None
    status_changed: bool = False
    event_ids: list[int] = field(default_factory=list)

    @property
    def duplicate(self) -> bool:
        """True when the provider event was already stored (nothing changed)."""
        return self.message_event is None


def consent_channel(channel: str) -> str:
    """The consent channel of a message channel (``zalo_zns`` -> ``zalo``)."""
    return CONSENT_CHANNEL.get(channel, channel)


def next_status(current: str, new: str) -> str | None:
    """The status after a ``new`` result on a message in ``current``, or None to keep it."""
    if current in TERMINAL_STATUSES or current == new:
        return None
    if new in (Status.BOUNCED, Status.FAILED):
        return new if STATUS_RANK.get(current, 0) <= STATUS_RANK[Status.DELIVERED] else None
    rank = STATUS_RANK.get(new)
    if rank is None:
        return None
    return new if rank > STATUS_RANK.get(current, 0) else None


def _event_properties(message: Message, provider: str, extra: dict[str, Any]) -> dict[str, Any]:
    return {
        "message_id": message.id,
        "channel": message.channel,
        "purpose": message.purpose,
        "template": message.template,
        "step_key": message.step_key,
        "enrollment_id": message.enrollment_id,
        "provider": provider,
        **extra,
    }


def record_message_event(
    session: Session,
    message: Message,
    type: str,
    provider: str,
    provider_event_id: str,
    payload: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
    canonical_key: str | None = None,
    properties: dict[str, Any] | None = None,
) -> FeedbackResult:
    """Store one provider/tracking result for ``message`` once and apply it.

    ``type`` is a message event type (sent, delivered, read, opened, clicked, replied,
    bounced, complained, failed, unsubscribed, or any other word stored as-is without a
    status change). A duplicate (provider, provider_event_id) returns a result with
    ``duplicate`` True and changes nothing. ``canonical_key`` overrides the deterministic
    id of the canonical event (clicks: one per link; replies: one per inbound message).
    Flushes, never commits.
    """
    when = occurred_at or now()
    new_id = insert_ignore(
        session,
        MessageEvent,
        {
            "message_id": message.id,
            "type": type,
            "provider": provider,
            "provider_event_id": provider_event_id,
            "occurred_at": when,
            "payload": payload or {},
        },
        ["provider", "provider_event_id"],
    )
    if new_id is None:
        log.info("duplicate %s event %s for message %s", provider, provider_event_id, message.id)
        return FeedbackResult()
    result = FeedbackResult(message_event=session.get(MessageEvent, new_id))
    target = next_status(message.status, type)
    if target is not None:
        message.status = target
        if target in (Status.BOUNCED, Status.FAILED) and payload and payload.get("reason"):
            message.error = str(payload["reason"])[:2000]
        result.status_changed = True
    canonical = CANONICAL.get(type)
    if canonical is not None:
        if canonical_key is None:
            canonical_key = (
                f"{canonical}:{message.id}"
                if canonical in ONCE_PER_MESSAGE
                else f"{canonical}:{message.id}:{provider}:{provider_event_id}"
            )
        event = record_event(
            session,
            canonical,
            message.contact_id,
            _event_properties(message, provider, properties or {}),
            canonical_key,
            occurred_at=when,
        )
        if event is not None:
            result.event_ids.append(event.id)
    session.flush()
    return result


def contact_address(contact: Contact, channel: str) -> str | None:
    """The contact's address on a consent channel (email, phone, Zalo id, PSID)."""
    channel = consent_channel(channel)
    if channel == "email":
        return contact.email
    if channel == "sms":
        return contact.phone
    if channel == "zalo":
        return contact.zalo_user_id or contact.phone
    if channel == "messenger":
        return contact.facebook_psid
    return None


def unsubscribe(
    session: Session,
    contact: Contact,
    channel: str,
    source: str,
    address: str | None = None,
    message: Message | None = None,
) -> list[int]:
    """Opt the contact out of marketing on ``channel``; returns new canonical event ids.

    Records Consent denied (channel, marketing), a Suppression (unsubscribed, marketing)
    for ``address`` (default: the contact's address on that channel), marks the
    contact's queued or deferred marketing messages on that channel ``skipped`` so
    sending stops at once, exits the contact's running marketing enrollments
    (automation.feedback.optout) and emits ``contact.unsubscribed`` when consent changed.
    Idempotent: a second call stores nothing new.
    """
    channel = consent_channel(channel)
    previous = session.scalar(
        select(Consent.status).where(
            Consent.contact_id == contact.id,
            Consent.channel == channel,
            Consent.purpose == MARKETING,
        )
    )
    record_consent(session, contact, channel, MARKETING, False, source)
    address = address or contact_address(contact, channel)
    if address:
        suppress(session, channel, address, "unsubscribed", MARKETING)
    channels = [name for name, consent in CONSENT_CHANNEL.items() if consent == channel]
    session.execute(
        update(Message)
        .where(
            Message.contact_id == contact.id,
            Message.channel.in_(channels),
            Message.purpose == MARKETING,
            Message.status.in_((Status.QUEUED, Status.DEFERRED, Status.POOLED)),
        )
        .values(status=Status.SKIPPED, error="unsubscribed", updated_at=now())
        .execution_options(synchronize_session="fetch")
    )
    exit_marketing(session, contact.id, now())
    ids: list[int] = []
    if previous != "denied":
        stamp = now()
        properties: dict[str, Any] = {"channel": channel, "source": source}
        if message is not None:
            properties["message_id"] = message.id
        event = record_event(
            session,
            CONTACT_UNSUBSCRIBED,
            contact.id,
            properties,
            f"{CONTACT_UNSUBSCRIBED}:{contact.id}:{channel}:{stamp.isoformat()}",
            occurred_at=stamp,
        )
        if event is not None:
            ids.append(event.id)
        log.info("contact %s unsubscribed from %s via %s", contact.id, channel, source)
    session.flush()
    return ids


def unsubscribe_message(session: Session, message: Message, source: str) -> list[int]:
    """Unsubscribe the recipient of ``message`` from that message's channel."""
    contact = session.get(Contact, message.contact_id)
    if contact is None:
        return []
    return unsubscribe(
        session, contact, message.channel, source, address=message.address, message=message
    )


def find_message(
    session: Session,
    message_id: int | str | None = None,
    provider_message_id: str | None = None,
) -> Message | None:
    """Our message by row id (digits only) or by the provider's message id."""
    if message_id is not None and str(message_id).strip().isdigit():
        found = session.get(Message, int(str(message_id).strip()))
        if found is not None:
            return found
    if provider_message_id:
        return session.scalars(
            select(Message)
            .where(Message.provider_message_id == provider_message_id)
            .order_by(Message.id.desc())
            .limit(1)
        ).first()
    return None


def dispatch_events(event_ids: list[int]) -> None:
    """Queue committed canonical events for process_event (segments, sequence exits).

    A failed enqueue is only logged: the events are stored, and the scheduler processes
    unprocessed events from the database.
    """
    outbox.hand_off("events", event_ids)
