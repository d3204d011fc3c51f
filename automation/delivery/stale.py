"""Scheduler sweep: find outbox rows Redis lost, or that became due, and enqueue them.

* ``sending`` rows not updated for OUTBOX_STALE_SECONDS (worker killed mid-send) go back
  to ``queued``;
* ``queued`` rows (due: ``not_before`` passed or unset) not updated for
  OUTBOX_STALE_SECONDS (their actor message was lost) are re-sent;
* ``deferred`` rows whose ``not_before`` has passed become ``queued`` and are sent.

Touched rows get ``updated_at = now`` so the next pass does not re-send them again
while their actor message is waiting. Re-sending twice is harmless (claim).
The scheduler task ``stale_outbox`` (automation.runtime.tasks); the rows go to the send
queues through the outbox hook once the update commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlalchemy.orm import Session

from automation.core import outbox
from automation.core.config import get_settings
from automation.core.models import Message
from automation.core.vocabulary import Status


def requeue_stale(session: Session, now: datetime, limit_seconds: int | None = None) -> int:
    """Re-queue lost/stuck/due outbox rows and enqueue them; returns how many."""
    stale = now - timedelta(seconds=limit_seconds or get_settings().outbox_stale_seconds)
    due = or_(Message.not_before.is_(None), Message.not_before <= now)
    stmt = (
        update(Message)
        .where(
            or_(
                and_(Message.status == Status.SENDING, Message.updated_at < stale),
                and_(Message.status == Status.QUEUED, Message.updated_at < stale, due),
                and_(Message.status == Status.DEFERRED, Message.not_before <= now),
            )
        )
        .values(status=Status.QUEUED, updated_at=now)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    ids = list(session.execute(stmt).scalars().all())
    outbox.after_commit(session, "messages", ids)
    session.commit()
    return len(ids)

