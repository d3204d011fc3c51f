"""Which sent demo messages are opened and clicked, and when: decided per message identity.

The decision is keyed on what the message *is* (who, which sequence and enrollment, which
step, which channel), never on its row id, so feeding the same story in different batch
sizes (which changes the order rows are created in) keeps every later click the same.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.models import Contact, Enrollment, Message, Sequence

#: Probability that a sent message is opened / clicked, per channel.
OPEN_RATE = {"email": 0.25}
CLICK_RATE = {"email": 0.08, "zalo_zns": 0.15, "zalo_oa": 0.12, "sms": 0.05, "messenger": 0.15}
SENT_STATUSES = ("sent", "delivered", "opened", "clicked", "read", "replied")


def identity(
    person: str, sequence: str | None, entered_at: datetime | None, step_key: str, channel: str
) -> str:
    """The stable name of one message: contact, sequence, enrollment start, step, channel."""
    started = clock.ensure_utc(entered_at).isoformat() if entered_at is not None else "-"
    return f"{person}|{sequence or '-'}|{started}|{step_key}|{channel}"


def decide(seed: int, name: str, channel: str, sent_at: datetime) -> list[tuple[datetime, str]]:
    """The opens/clicks of the message called ``name``: [(when, "opened" | "clicked")]."""
    rng = random.Random(f"{seed}:{name}")
    base = clock.ensure_utc(sent_at)
    found: list[tuple[datetime, str]] = []
    if rng.random() < OPEN_RATE.get(channel, 0.0):
        found.append((base + timedelta(minutes=rng.uniform(5, 300)), "opened"))
    if rng.random() < CLICK_RATE.get(channel, 0.0):
        found.append((base + timedelta(minutes=rng.uniform(8, 480)), "clicked"))
    return found


def sent_since(session: Session, since: datetime | None) -> list[Any]:
    """Sent messages (sent_at >= ``since`` less a minute, or all) with what names them:
    rows of (id, channel, sent_at, person, sequence key, enrollment entered_at, step_key)."""
    query = (
        select(Message.id, Message.channel, Message.sent_at,
               Contact.email, Contact.phone, Contact.zalo_user_id, Contact.facebook_psid,
               Sequence.key, Enrollment.entered_at, Message.step_key)  # fmt: skip
        .join(Contact, Contact.id == Message.contact_id)
        .outerjoin(Enrollment, Enrollment.id == Message.enrollment_id)
        .outerjoin(Sequence, Sequence.id == Enrollment.sequence_id)
        .where(Message.status.in_(SENT_STATUSES), Message.sent_at.is_not(None))
    )
    if since is not None:
        # updated_at >= sent_at on every row, so the updated_at bound changes no result;
        # it lets ix_messages_status_updated find the rows.
        after = since - timedelta(minutes=1)
        query = query.where(Message.sent_at >= after, Message.updated_at >= after)
    return list(session.execute(query.order_by(Message.id)).all())


def person_of(email: str | None, phone: str | None, zalo: str | None, psid: str | None) -> str:
    """A contact's stable name in the demo: its first known address."""
    return email or phone or zalo or psid or "?"
