"""Due enrollments: the scheduler's ``due_enrollments`` task (waits elapsed, timeouts).

Each claimed batch is advanced as one optimistic batch (automation.core.processing): its
enrollments locked with one statement, their outbox rows written together at its end,
one commit. If anything in it fails, it is rolled back and redone one enrollment at a
time (automation.core.claims.each), so a failure stays with its enrollment.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.claims import each, work_in_batches
from automation.core.models import Enrollment, Sequence
from automation.core.processing import optimistic_batch
from automation.sequences.engine import RUNNING, lock_enrollments, try_advance


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

    def advance(ids: list[int], failed: set[int]) -> int:
        done = optimistic_batch(session, lambda: advance_due(session, ids, now))
        if done is not None:
            return done
        return each(session, ids, lambda eid: try_advance(session, eid, now), failed)

    return work_in_batches(session, query, Enrollment, advance)


def advance_due(session: Session, ids: list[int], now: datetime) -> int:
    """Lock the enrollments (one statement) and advance each that is still due; how many."""
    locked = lock_enrollments(session, ids)
    return sum(
        try_advance(session, eid, now, locked=locked[eid]) is not None
        for eid in ids
        if eid in locked
    )
