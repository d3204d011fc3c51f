"""The scheduler's pending pass reads the partial index of live unprocessed events.

Without it every pass scanned the whole events table (the demo spent ~6% of its time
there on SQLite; on PostgreSQL the table grows without bound).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text
from sqlalchemy.orm import Session

from automation.core.db import is_postgres
from automation.core.processing import pending_query


def test_the_pending_query_uses_the_partial_index(session: Session) -> None:
    query = pending_query(datetime(2026, 11, 29, tzinfo=UTC))
    compiled = query.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
    if is_postgres(session):
        session.execute(text("SET LOCAL enable_seqscan = off"))  # an empty table: force a choice
        plan = session.scalars(text(f"EXPLAIN {compiled}")).all()
    else:
        plan = [row[-1] for row in session.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))]
    assert any("ix_events_pending" in line for line in plan), plan
