"""Enrollment benchmark: N contacts entering a segment-triggered sequence in one scheduler pass.

    python bench/enroll.py [--contacts 20000 200000] [--old 2000]

PostgreSQL (a throw-away database per size; BENCH_PG_ADMIN_URL) with the shipped
playbooks applied. N contacts bought once more than 90 days ago (so they fall into
``lapsed_90d``, which triggers ``winback``, audience ``reachable``). One scheduler pass
(automation.runtime.scheduler.run_pass: the time_segments task refreshes lapsed_90d and
processes the segment.entered events) is timed until every contact is enrolled with its
first message queued in the outbox. Baseline in the same database: a bare
``INSERT ... SELECT`` of the same enrollments and outbox rows (rolled back). ``--old N``
also times the one-event-at-a-time path (process_event per segment.entered) for N
contacts, for comparison. No Redis: the committed outbox ids go nowhere (no sink).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import load_average, throwaway_database  # noqa: E402

CONTACTS_SQL = """
INSERT INTO contacts (email, first_name, last_name, timezone, attributes, tags, orders_count,
                      total_spent, first_order_at, last_order_at, last_inbound_at, created_at,
                      updated_at)
SELECT 'khach' || g || '@example.vn', 'Lan', 'Nguyễn', 'Asia/Ho_Chi_Minh', '{}', '[]', 1,
       350000, :bought, :bought, '{}', :bought, :bought
FROM generate_series(1, :n) AS g
"""
BARE_SQL = [
    """
    CREATE TEMP TABLE bare ON COMMIT DROP AS
    WITH new AS (
      INSERT INTO enrollments (sequence_id, version_id, contact_id, state, cursor, next_run_at,
                               context, trigger_event_id, entered_at)
      SELECT :sid, :vid, m.contact_id, 'waiting', '2', :later, '{}', NULL, :now
      FROM segment_memberships m WHERE m.segment_id = :seg AND m.exited_at IS NULL
      RETURNING id, contact_id)
    SELECT * FROM new
    """,
    """
    INSERT INTO messages (enrollment_id, step_key, contact_id, channel, purpose, template,
                          status, attempts, fallback, rendered, links, created_at, updated_at)
    SELECT id, '0', contact_id, 'email', 'marketing', 'winback/reminder', 'queued', 0,
           '[]', '{}', '{}', :now, :now FROM bare
    """,
]


def setup(url: str, n: int) -> None:
    """Schema, playbooks, N lapsed buyers, the reachable audience refreshed (not timed)."""
    from automation.apply import apply_paths
    from automation.core import clock
    from automation.core.db import session_scope
    from automation.core.migrate import upgrade
    from automation.core.models import Event, Segment
    from automation.segments.membership import refresh_segment

    upgrade(url)
    with session_scope() as session:
        apply_paths(session, [ROOT / "playbooks"], refresh=False)
    with session_scope() as session:
        bought = clock.now() - timedelta(days=120)
        session.execute(sa.text(CONTACTS_SQL), {"n": n, "bought": bought})
        reachable = session.scalars(sa.select(Segment).where(Segment.key == "reachable")).one()
        refresh_segment(session, reachable, clock.now())
        session.execute(sa.update(Event).values(processed_at=clock.now()))
        session.execute(sa.update(Segment).values(refreshed_at=None))
    with session_scope() as session:
        session.connection().exec_driver_sql("ANALYZE")


def one_pass(set_based: bool) -> tuple[float, dict[str, int]]:
    """Run one scheduler pass; (seconds, its task counts)."""
    from automation.core import clock
    from automation.core.db import session_factory
    from automation.core.processing import process_pending_events
    from automation.runtime import tasks
    from automation.runtime.scheduler import run_pass

    table = tasks.TASKS
    if not set_based:  # the one-event-at-a-time path, for comparison
        def old(session: sa.orm.Session, now: object) -> int:
            from automation.segments.membership import refresh_time_based_segments

            changes = refresh_time_based_segments(session, now)  # type: ignore[arg-type]
            session.commit()
            process_pending_events(session, max(now, clock.now()))  # type: ignore[type-var]
            return changes

        table = tuple(tasks.Task(t.name, old) if t.name == "time_segments" else t for t in table)
    started = time.perf_counter()
    result = run_pass(session_factory(), clock.now(), tasks=table)
    return time.perf_counter() - started, result


def counts() -> tuple[int, int]:
    """(winback enrollments, their queued first messages)."""
    from automation.core.db import session_scope

    with session_scope() as session:
        enrolled = session.execute(sa.text("SELECT count(*) FROM enrollments")).scalar_one()
        queued = session.execute(
            sa.text("SELECT count(*) FROM messages WHERE status = 'queued' AND step_key = '0'")
        ).scalar_one()
    return int(enrolled), int(queued)


def bare_insert() -> float:
    """Seconds for a bare INSERT ... SELECT of the same enrollments + outbox rows (rolled back)."""
    from automation.core import clock
    from automation.core.db import session_factory
    from automation.core.models import Segment, Sequence

    session = session_factory()()
    try:
        seq = session.scalars(sa.select(Sequence).where(Sequence.key == "winback")).one()
        seg = session.scalars(sa.select(Segment).where(Segment.key == "lapsed_90d")).one()
        now = clock.now()
        params = {"sid": seq.id, "vid": seq.current_version_id, "seg": seg.id, "now": now,
                  "later": now + timedelta(days=5)}
        session.commit()
        started = time.perf_counter()
        for statement in BARE_SQL:
            session.execute(sa.text(statement), params)
        elapsed = time.perf_counter() - started
        session.rollback()
        return elapsed
    finally:
        session.close()


def run(n: int, set_based: bool) -> tuple[float, float | None]:
    """Set up N contacts, time one pass (and the baseline); print and return rates."""
    with throwaway_database() as url:
        os.environ["DATABASE_URL"] = url
        from automation.core.config import get_settings

        get_settings.cache_clear()
        started = time.perf_counter()
        setup(url, n)
        print(f"  {n:,} contacts set up in {time.perf_counter() - started:.1f}s", flush=True)
        seconds, result = one_pass(set_based)
        enrolled, queued = counts()
        if enrolled != n or queued != n or -1 in result.values():
            raise SystemExit(f"incomplete pass: {enrolled} enrolled, {queued} queued, {result}")
        rate = n / seconds
        label = "set-based" if set_based else "one event at a time"
        print(f"  {label}: {n:,} enrolled + first message queued in {seconds:.2f}s "
              f"= {rate:,.0f} contacts/s  ({load_average()})", flush=True)
        if not set_based:
            return rate, None
        bare = bare_insert()
        print(f"  bare INSERT ... SELECT of the same rows: {bare:.2f}s = {n / bare:,.0f} rows/s; "
              f"pass / bare = {bare / seconds:.2f}x", flush=True)
        return rate, n / bare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--old", type=int, default=2000, help="0 skips the old path")
    args = parser.parse_args()
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-0123456789abcdef-bench")
    os.environ.pop("REDIS_URL", None)
    os.environ["LOG_LEVEL"] = "WARNING"
    logging.disable(logging.WARNING)
    from automation.runtime import handlers

    handlers.install()  # the process_event handler table (the worker's and mactl's)
    for n in args.contacts:
        print(f"{n:,} contacts entering lapsed_90d -> winback:", flush=True)
        run(n, set_based=True)
    if args.old:
        print(f"{args.old:,} contacts, the one-event-at-a-time path:", flush=True)
        run(args.old, set_based=False)
    print("goal: >= 2,000 contacts/s enrolled with their first message queued")


if __name__ == "__main__":
    main()
