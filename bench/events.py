"""Event processing benchmark: stored shop events through the shipped playbooks, one process.

    python bench/events.py [--contacts 1000] [--days 30]

PostgreSQL (a throw-away database; BENCH_PG_ADMIN_URL). The shipped playbooks are applied
and the demo's simulated shop month (demo/data.py: order history, leads, checkouts,
orders, shipments) is stored through the ingest store without being processed. Then, with
the clock at the end of the month:

1. baseline: the scheduler's event pass with no handlers (its batched claim + commit only);
2. the same events again (processed_at reset) with the runtime's handler table: orders
   and carts, segments, sequence exits, wake-ups and triggers, their follow-up
   segment events, and the first messages queued.

Prints events/s for both, their ratio, and the load average. Goal: >= 500 events/s.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import load_average, throwaway_database  # noqa: E402

START = datetime(2026, 5, 1, tzinfo=UTC)


def store_story(contacts: int, days: int) -> int:
    """Store the demo's shop events (history first) unprocessed; returns how many."""
    from automation.core.db import session_scope
    from automation.inbox.store import store_events
    from automation.ingest.sources.native import NativeSource
    from demo.data import Story, make_people

    rng = random.Random(7)
    story = Story(rng, START, days)
    story.build(make_people(rng, contacts))
    payloads = [p.payload for p in (*story.history, *sorted(story.events, key=lambda p: p.at))]
    stored = 0
    for start in range(0, len(payloads), 500):
        with session_scope() as session:
            events = NativeSource().parse("", {"events": payloads[start : start + 500]})
            stored += len(store_events(session, "native", events).new_ids)
    return stored


def timed_pass(at: datetime) -> tuple[int, float, float]:
    """process_pending_events as of ``at`` in one session; (events processed, wall seconds,
    this process's CPU seconds: steadier than wall time on a shared machine)."""
    from automation.core.db import session_factory
    from automation.runtime.tasks import pending_events

    session = session_factory()()
    try:
        started, cpu = time.perf_counter(), time.process_time()
        done = pending_events(session, at)
        session.commit()
        return done, time.perf_counter() - started, time.process_time() - cpu
    finally:
        session.close()


def reset(at: datetime) -> int:
    """Every processed event back to unprocessed (for the second run); returns how many."""
    from automation.core.db import session_scope
    from automation.core.models import Event

    with session_scope() as session:
        result = session.execute(sa.update(Event).values(processed_at=None))
        return int(result.rowcount)  # type: ignore[attr-defined]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    args = parser.parse_args()
    os.environ.setdefault("SECRET_KEY", "bench-secret-key-0123456789abcdef-bench")
    os.environ.pop("REDIS_URL", None)
    os.environ["LOG_LEVEL"] = "WARNING"
    logging.disable(logging.WARNING)
    from automation.apply import apply_paths
    from automation.core import clock, processing
    from automation.core.config import get_settings
    from automation.core.db import session_scope
    from automation.core.migrate import upgrade
    from automation.runtime import handlers

    with throwaway_database() as url:
        os.environ["DATABASE_URL"] = url
        get_settings.cache_clear()
        upgrade(url)
        fake = clock.FrozenClock(START)
        previous = clock.install(fake)
        try:
            with session_scope() as session:
                apply_paths(session, [ROOT / "playbooks"], at=START)
            end = START + timedelta(days=args.days)
            fake.set(end)  # the story's events are checked against "now" when parsed
            stored = store_story(args.contacts, args.days)
            print(f"{stored:,} shop events stored for {args.contacts:,} contacts "
                  f"over {args.days} days", flush=True)
            processing.use_handlers([])
            done, seconds, cpu = timed_pass(end)
            bare = done / seconds
            print(f"  baseline, no handlers (claim + commit): {done:,} events in {seconds:.2f}s "
                  f"= {bare:,.0f} events/s; {cpu:.2f}s CPU in this process  ({load_average()})",
                  flush=True)
            reset(end)
            handlers.install()
            done, seconds, cpu = timed_pass(end)
            rate = done / seconds
            print(f"  shipped playbooks: {done:,} events (incl. segment follow-ups) in "
                  f"{seconds:.2f}s = {rate:,.0f} events/s; {rate / bare:.2f}x the baseline; "
                  f"{cpu:.2f}s CPU in this process = {done / cpu:,.0f} events per CPU second  "
                  f"({load_average()})", flush=True)
        finally:
            clock.install(previous)
    print("goal: >= 500 events/s per process on PostgreSQL")


if __name__ == "__main__":
    main()
