"""Apply parsed provider callbacks: find our message(s), record each result once.

Provider-neutral: ``channels/<provider>.py`` verifies and parses a callback into
``channels.callback.CallbackResult`` records; :func:`apply` finds the message each one
is about (our row id, the provider's id, or a person and their recent messages) and
records it through automation.feedback.results. Unknown messages are counted as
``ignored`` and logged. Then the result's consequences: suppression and opt-out, soft
bounces counted (automation.contacts.reachability), a delivery marks the channel
reachable, and a failure soon after sending sends the step's fallback
(automation.feedback.late).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.contacts.reachability import (
    SOFT_BOUNCE_TYPES,
    mark_reachable,
    soft_bounced,
    suppress,
)
from automation.core import outbox
from automation.core.clock import now
from automation.core.config import Settings, get_settings
from automation.core.models import Contact, Message
from automation.core.vocabulary import CONSENT_CHANNEL, Status
from automation.feedback import results as feedback
from automation.feedback.late import late_fallback
from channels.callback import IGNORED, MESSAGE_ID, CallbackResult

log = logging.getLogger(__name__)

#: Consent channel -> the contact column holding the person's id there.
PERSON_ID: dict[str, Any] = {"zalo": Contact.zalo_user_id, "messenger": Contact.facebook_psid}


@dataclass
class Outcome:
    """Counts for the HTTP answer and the new canonical event ids to process."""

    applied: int = 0
    duplicates: int = 0
    ignored: int = 0
    event_ids: list[int] = field(default_factory=list)
    fallbacks: list[int] = field(default_factory=list)

    def add(self, result: feedback.FeedbackResult) -> None:
        """Count one feedback result."""
        if result.duplicate:
            self.duplicates += 1
        else:
            self.applied += 1
            self.event_ids.extend(result.event_ids)

    def answer(self) -> dict[str, int]:
        """The JSON body counts."""
        return {"applied": self.applied, "duplicates": self.duplicates, "ignored": self.ignored}


def apply(
    session: Session,
    provider: str,
    results: list[CallbackResult],
    settings: Settings | None = None,
) -> Outcome:
    """Record every result of one callback from ``provider``; flushes, never commits.

    Fallback messages created for late failures are queued once the session commits.
    """
    settings = settings or get_settings()
    outcome = Outcome()
    for result in results:
        if result.kind == IGNORED:
            outcome.ignored += 1
        elif result.kind == Status.REPLIED and result.user_id is not None:
            _inbound(session, outcome, provider, result)
        else:
            messages = _messages(session, result)
            if not messages:
                log.info("%s callback for unknown message (%s): ignored", provider, result.what)
                outcome.ignored += 1
            for message in messages:
                _record(session, outcome, provider, message, result, settings)
    outbox.after_commit(session, "messages", outcome.fallbacks)
    return outcome


def _messages(session: Session, result: CallbackResult) -> list[Message]:
    """The messages ``result`` is about (see channels.callback for the order)."""
    for message_id in result.message_ids:
        found = feedback.find_message(session, message_id)
        if found is not None:
            return [found]
    found_by_provider = []
    for provider_id in result.provider_ids:
        found = feedback.find_message(session, None, provider_id)
        if found is not None and found not in found_by_provider:
            found_by_provider.append(found)
            if not result.every_id:
                break
    if found_by_provider or not (result.user_id and result.sent_before):
        return found_by_provider
    return _sent_before(session, result.user_id, result.channels, result.sent_before)


def _person(session: Session, channels: tuple[str, ...], user_id: str) -> Contact | None:
    column = PERSON_ID[CONSENT_CHANNEL[channels[0]]]
    return session.scalar(select(Contact).where(column == user_id)) if user_id else None


def _sent_before(
    session: Session, user_id: str, channels: tuple[str, ...], watermark: datetime
) -> list[Message]:
    """The person's messages on ``channels`` sent at or before ``watermark``."""
    contact = _person(session, channels, user_id)
    if contact is None:
        return []
    return list(
        session.scalars(
            select(Message).where(
                Message.contact_id == contact.id,
                Message.channel.in_(channels),
                Message.sent_at.is_not(None),
                Message.sent_at <= watermark,
            )
        )
    )


def _record(
    session: Session,
    outcome: Outcome,
    provider: str,
    message: Message,
    result: CallbackResult,
    settings: Settings,
) -> None:
    """Record ``result`` on ``message``; then its suppression / opt-out, once."""
    recorded = feedback.record_message_event(
        session,
        message,
        result.kind,
        provider,
        result.event_id.replace(MESSAGE_ID, str(message.id)),
        result.payload,
        result.at,
        properties=result.properties,
    )
    outcome.add(recorded)
    if recorded.duplicate:
        return
    address = result.address or message.address
    if result.suppress and address:
        suppress(session, message.channel, address, *result.suppress)
    if result.unsubscribe:
        outcome.event_ids += feedback.unsubscribe_message(session, message, result.unsubscribe)
    at = result.at or now()
    if result.kind in SOFT_BOUNCE_TYPES:
        soft_bounced(session, message.channel, address, at, settings)
    elif result.kind == Status.DELIVERED:
        mark_reachable(session, message, at)
    elif recorded.status_changed and message.status in (Status.FAILED, Status.BOUNCED):
        fallback = late_fallback(session, message, at, settings)
        if fallback is not None:
            outcome.fallbacks.append(fallback)


def _inbound(session: Session, outcome: Outcome, provider: str, result: CallbackResult) -> None:
    """A person wrote to us: open the reply window and mark our latest message replied."""
    assert result.user_id is not None
    contact = _person(session, result.channels, result.user_id)
    if contact is None:
        log.info(
            "%s callback for unknown message (inbound from unknown user %r): ignored",
            provider,
            result.user_id,
        )
        outcome.ignored += 1
        return
    window = CONSENT_CHANNEL[result.channels[0]]
    stamp = (result.at or now()).isoformat()
    previous = (contact.last_inbound_at or {}).get(window)
    if previous is None or str(previous) < stamp:
        contact.last_inbound_at = {**(contact.last_inbound_at or {}), window: stamp}
    latest = session.scalars(
        select(Message)
        .where(
            Message.contact_id == contact.id,
            Message.channel.in_(result.channels),
            Message.sent_at.is_not(None),
        )
        .order_by(Message.sent_at.desc(), Message.id.desc())
        .limit(1)
    ).first()
    if latest is None:
        session.flush()
        return
    outcome.add(
        feedback.record_message_event(
            session, latest, result.kind, provider, result.event_id, result.payload, result.at
        )
    )
