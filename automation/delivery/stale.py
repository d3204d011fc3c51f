"""Scheduler sweep: find outbox rows Redis lost, or that became due, and enqueue them.

* ``sending`` rows not updated for OUTBOX_STALE_SECONDS (worker killed mid-send) go back
  to ``queued``;
* ``queued`` rows (due: ``not_before`` passed or unset) not updated for
  OUTBOX_STALE_SECONDS (their actor message was lost) are re-sent;
* ``deferred`` rows whose ``not_before`` has passed become ``queued`` and are sent.

Touched rows get ``updated_at = now`` so the next pass does not re-send them again
while their actor message is waiting. Re-sending twice is harmless (claim).
Registered as the scheduler task ``stale_outbox`` (replacing the built-in queued-only one);
automation.delivery.scheduled imports this module (it is in scheduler.TASK_MODULES).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, or_, update
from sqlalchemy.orm import Session

from automation.core.config import get_settings
from automation.core.models import Message


def requeue_stale(session: Session, now: datetime, limit_seconds: int | None = None) -> int:
    """Re-queue lost/stuck/due outbox rows and enqueue them; returns how many."""
    from automation.runtime.dispatch import enqueue_messages

    stale = now - timedelta(seconds=limit_seconds or get_settings().outbox_stale_seconds)
    due = or_(Message.not_before.is_(None), Message.not_before <= now)
    stmt = (
        update(Message)
        .where(
            or_(
                and_(Message.status == "sending", Message.updated_at < stale),
                and_(Message.status == "queued", Message.updated_at < stale, due),
                and_(Message.status == "deferred", Message.not_before <= now),
            )
        )
        .values(status="queued", updated_at=now)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    ids = list(session.execute(stmt).scalars().all())
    session.commit()
    if ids:
        enqueue_messages(session, ids)
    return len(ids)


from automation.runtime.scheduler import periodic  # noqa: E402  (after the function it registers)

# Replaces the scheduler's built-in queued-only sweep (same name, same order).
periodic("stale_outbox", order=50)(requeue_stale)
