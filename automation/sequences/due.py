"""Due enrollments: the scheduler's ``due_enrollments`` task (waits elapsed, timeouts)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.claims import work_through
from automation.core.models import Enrollment, Sequence
from automation.sequences.engine import RUNNING, try_advance


def run_due_enrollments(session: Session, now: datetime) -> int:
    """Advance every enrollment due by ``now`` (active sequences only); returns how many."""
    query = (
        select(Enrollment.id)
        .join(Sequence, Sequence.id == Enrollment.sequence_id)
        .where(
            Enrollment.state.in_(RUNNING),
            Enrollment.next_run_at <= now,
            Sequence.status == "active",
        )
        .order_by(Enrollment.next_run_at, Enrollment.id)
    )
    return work_through(session, query, Enrollment, lambda eid: try_advance(session, eid, now))
