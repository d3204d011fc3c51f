"""Scheduler sweep: find outbox rows Redis lost, or that became due, and enqueue them.

* ``sending`` rows not updated for OUTBOX_STALE_SECONDS (worker killed mid-send) are
  ambiguous: the provider call may have gone out. The choice is explicit per purpose:

  - transactional rows go back to ``queued`` and are sent again (at least once; the row
    id is the provider's idempotency key, so a provider that dedupes sees one message);
  - marketing rows end ``unknown`` with the reason and are not sent again (at most once),
    unless DELIVERY_AMBIGUOUS_MARKETING=resend. A provider callback may still move an
    ``unknown`` row forward (delivered, read, ...).

  A stale ``sending`` row with no stored rendering never reached the provider call (the
  rendering is committed before it): it is re-queued whatever its purpose.
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

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from automation.core import outbox
from automation.core.config import get_settings
from automation.core.models import Message
from automation.core.vocabulary import MARKETING, Status

#: The reason stored on a marketing row that ends ``unknown``.
AMBIGUOUS_REASON = (
    "provider call in flight when the worker stopped (stale 'sending'); not sent again "
    "(DELIVERY_AMBIGUOUS_MARKETING=skip)"
)


def requeue_stale(session: Session, now: datetime, limit_seconds: int | None = None) -> int:
    """Re-queue lost/stuck/due outbox rows and enqueue them; returns how many re-queued.

    Stale ``sending`` marketing rows end ``unknown`` instead (see the module docstring).
    """
    settings = get_settings()
    stale = now - timedelta(seconds=limit_seconds or settings.outbox_stale_seconds)
    unknown = _ambiguous_marketing(session, stale) if (
        settings.delivery_ambiguous_marketing == "skip"
    ) else []
    if unknown:
        session.execute(
            update(Message)
            .where(Message.id.in_(unknown), Message.status == Status.SENDING)
            .values(status=Status.UNKNOWN, error=AMBIGUOUS_REASON, updated_at=now)
            .execution_options(synchronize_session=False)
        )
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


def _ambiguous_marketing(session: Session, stale: datetime) -> list[int]:
    """Stale ``sending`` marketing rows that may have reached the provider (rendered)."""
    rows = session.execute(
        select(Message.id, Message.rendered).where(
            Message.status == Status.SENDING,
            Message.updated_at < stale,
            Message.purpose == MARKETING,
        )
    ).all()
    return [row.id for row in rows if row.rendered]
