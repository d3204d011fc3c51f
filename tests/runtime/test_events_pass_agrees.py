"""The scheduler's batched event pass gives the same state as processing one event at a time.

The demo's shop month for a few dozen contacts, with the shipped playbooks, is processed
once with process_event and a commit per event, then (tables emptied, same events stored
again) with process_pending_events: orders, rollups, carts, memberships, enrollments,
messages and conversions must be the same.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.apply import apply_paths
from automation.core import clock
from automation.core.config import Settings
from automation.core.models import (
    Cart,
    Contact,
    Enrollment,
    Event,
    Message,
    Order,
    Segment,
    SegmentMembership,
    Sequence,
)
from automation.core.models_analytics import Attribution, GoalConversion
from automation.core.processing import process_event, process_events, process_pending_events
from automation.feedback.results import record_message_event
from automation.inbox.store import store_events
from automation.ingest.sources.native import NativeSource
from demo.data import Story, make_people
from tests.conftest import _truncate

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
START = datetime(2026, 5, 1, tzinfo=UTC)
DAYS = 30


def _store(session: Session, fake: clock.FrozenClock) -> list[int]:
    """Apply the playbooks and store the shop month unprocessed; the stored event ids."""
    fake.set(START)
    apply_paths(session, [PLAYBOOKS], at=START)
    session.commit()
    fake.set(START + timedelta(days=DAYS))
    rng = random.Random(11)
    story = Story(rng, START, DAYS)
    story.build(make_people(rng, 40))
    payloads = [p.payload for p in (*story.history, *sorted(story.events, key=lambda p: p.at))]
    events = NativeSource().parse("", {"events": payloads})
    ids = list(store_events(session, "native", events).new_ids)
    session.commit()
    return ids


def _snapshot(session: Session) -> dict[str, list[tuple[str, ...]]]:
    """Everything the handlers write, keyed by stable values (emails, keys), not ids."""
    session.expire_all()
    email = {c.id: c.email or c.phone for c in session.scalars(select(Contact))}
    segment = dict(session.execute(select(Segment.id, Segment.key)).all())
    sequence = dict(session.execute(select(Sequence.id, Sequence.key)).all())
    enrollment = {
        e.id: (sequence[e.sequence_id], email[e.contact_id], e.trigger_event_id)
        for e in session.scalars(select(Enrollment))
    }

    def rows(values: Any) -> list[tuple[str, ...]]:
        return sorted(tuple(str(v) for v in row) for row in values)

    return {
        "contacts": rows(
            (email[c.id], c.orders_count, c.total_spent, c.first_order_at, c.last_order_at)
            for c in session.scalars(select(Contact))
        ),
        "orders": rows(
            (o.external_id, o.status, o.total, email.get(o.contact_id))  # type: ignore[arg-type]
            for o in session.scalars(select(Order))
        ),
        "carts": rows(
            (c.external_id, c.converted_at, c.abandoned_at) for c in session.scalars(select(Cart))
        ),
        "memberships": rows(
            (segment[m.segment_id], email[m.contact_id], m.entered_at, m.exited_at)
            for m in session.scalars(select(SegmentMembership))
        ),
        "enrollments": rows(
            (*enrollment[e.id][:2], e.state, e.cursor, e.exit_reason, e.next_run_at)
            for e in session.scalars(select(Enrollment))
        ),
        "messages": rows(
            (*enrollment[m.enrollment_id][:2], m.step_key, m.channel, m.status,  # type: ignore[index]
             m.purpose, m.template, m.attempts, tuple(m.fallback), repr(sorted(m.rendered.items())),
             repr(m.links), m.created_at, m.updated_at)
            for m in session.scalars(select(Message))
        ),
        "events": rows(
            (e.type, email.get(e.contact_id), e.processed_at is not None, e.attempts)  # type: ignore[arg-type]
            for e in session.scalars(select(Event))
        ),
        "conversions": rows(
            [("goal", enrollment[g.enrollment_id][:2], g.revenue)
             for g in session.scalars(select(GoalConversion))]
            + [("attribution", a.step_key, a.revenue) for a in session.scalars(select(Attribution))]
        ),  # fmt: skip
    }


def test_batched_pass_and_one_event_at_a_time_agree(
    settings: Settings, session: Session, frozen_clock: clock.FrozenClock
) -> None:
    for event_id in _store(session, frozen_clock):
        process_event(session, event_id)
        session.commit()
    one_by_one = _snapshot(session)
    assert one_by_one["enrollments"] and one_by_one["messages"] and one_by_one["memberships"]

    session.close()
    _truncate(settings.database_url)
    _store(session, frozen_clock)
    assert process_pending_events(session, clock.now()) > 0
    session.commit()
    batched = _snapshot(session)

    for table, expected in one_by_one.items():
        assert batched[table] == expected, table


def _in_batches(session: Session, ids: list[int]) -> None:
    for start in range(0, len(ids), 200):
        process_events(session, ids[start : start + 200])


def _one_at_a_time(session: Session, ids: list[int]) -> None:
    for event_id in ids:
        process_event(session, event_id)
        session.commit()


def _play(session: Session, fake: clock.FrozenClock, process: Callable[[Session, list[int]], None]
          ) -> dict[str, list[tuple[str, ...]]]:
    """The month day by day: each day's events processed at its end, then a click on each
    message sent that day: enrollments reach goals and later orders are attributed."""
    pending = _store(session, fake)
    occurred = {i: at for i, at in session.execute(select(Event.id, Event.occurred_at))}
    clicked: set[int] = set()
    for day in range(1, DAYS + 1):
        fake.set(START + timedelta(days=day))
        process(session, [i for i in pending if occurred[i] < clock.now()])
        pending = [i for i in pending if occurred[i] >= clock.now()]
        clicks: list[int] = []
        for message in session.scalars(select(Message).order_by(Message.id)).all():
            if message.id in clicked:
                continue
            clicked.add(message.id)
            key = f"{message.enrollment_id}:{message.step_key}"
            result = record_message_event(session, message, "clicked", "test", key,
                                          occurred_at=clock.now())  # fmt: skip
            clicks.extend(result.event_ids)
        session.commit()
        process(session, clicks)
    return _snapshot(session)


def test_goals_and_attributions_agree_between_batches_and_one_at_a_time(
    settings: Settings, session: Session, frozen_clock: clock.FrozenClock
) -> None:
    one_by_one = _play(session, frozen_clock, _one_at_a_time)
    kinds = {row[0] for row in one_by_one["conversions"]}
    assert kinds == {"goal", "attribution"}, one_by_one["conversions"]

    session.close()
    _truncate(settings.database_url)
    batched = _play(session, frozen_clock, _in_batches)

    for table, expected in one_by_one.items():
        assert batched[table] == expected, table
