"""A later failure triggers the fallback: undelivered soon after sending -> next channel.

When a provider reports a message undelivered or failed (an SMS delivery report of
failure, an e-mail permanent failure) within LATE_FALLBACK_WINDOW_MINUTES
of sending, the step's next fallback channel is sent, once per message (the fallback
row's step key is unique per enrollment and create_fallback returns an existing one),
and recorded on the message. A failure after the window is only recorded.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.config import Settings
from automation.core.models import Contact, Message
from automation.delivery.outcome import fall_back

log = logging.getLogger(__name__)


def late_fallback(
    session: Session, message: Message, failed_at: datetime, settings: Settings
) -> int | None:
    """The id of a newly created fallback message for a late failure, or None."""
    if message.sent_at is None or not message.fallback:
        return None
    window = timedelta(minutes=settings.late_fallback_window_minutes)
    if failed_at - message.sent_at > window:
        log.info("message %s failed after the fallback window: recorded only", message.id)
        return None
    if session.scalar(select(Message.id).where(Message.fallback_from_id == message.id).limit(1)):
        return None  # a fallback was already sent for this message
    contact = session.get(Contact, message.contact_id)
    if contact is None:
        return None
    fallback = fall_back(session, message, contact, message.error or f"{message.status} late")
    if fallback is None:
        return None
    log.info(
        "message %s failed late: fallback -> %s (%s)", message.id, fallback.channel, fallback.id
    )
    return fallback.id
