"""Claim outbox rows for sending: one conditional UPDATE, so a row goes to one worker.

``claim_rows`` moves ``queued``/``deferred`` rows whose ``not_before`` has passed to
``sending`` with ``attempts + 1`` and commits: a duplicated actor message cannot send
a row twice. The UPDATE returns the claimed rows themselves (no second query).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, update
from sqlalchemy.orm import Session

from automation.core.clock import now
from automation.core.db import one_of
from automation.core.models import Message
from automation.core.vocabulary import Status

SENDABLE = (Status.QUEUED, Status.DEFERRED)


def claim_rows(session: Session, ids: list[int], at: datetime | None = None) -> list[Message]:
    """Claim sendable rows (queued/deferred, due) as ``sending``; commit; return them by id."""
    if not ids:
        return []
    at = at or now()
    stmt = (
        update(Message)
        .where(
            one_of(session, Message.id, ids),
            Message.status.in_(SENDABLE),
            or_(Message.not_before.is_(None), Message.not_before <= at),
        )
        .values(status=Status.SENDING, attempts=Message.attempts + 1, updated_at=at)
        .returning(Message)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    claimed = sorted(session.scalars(stmt).all(), key=lambda m: m.id)
    session.commit()
    return claimed


def claim_many(session: Session, ids: list[int], at: datetime | None = None) -> list[int]:
    """Claim sendable rows (see :func:`claim_rows`); commit; return their ids."""
    return [m.id for m in claim_rows(session, ids, at)]


def claim(session: Session, message_id: int) -> bool:
    """Claim one row (see :func:`claim_many`); False if it is not sendable now."""
    return bool(claim_many(session, [message_id]))
