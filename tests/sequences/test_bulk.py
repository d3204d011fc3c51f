"""Set-based enrollment (automation.sequences.bulk) agrees with process_event, one at a time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from automation.core.clock import FrozenClock
from automation.core.eventlog import record_event
from automation.core.models import Enrollment, Event, Message, SegmentMembership, Sequence
from automation.core.processing import process_event, process_pending_events
from automation.segments import apply_segments, load_segment_text
from automation.segments.membership import refresh_all
from automation.sequences.bulk import plan_first_steps, process_segment_events
from automation.sequences.store import load_version
from tests.sequences.helpers import apply_yaml, make_contact

SEGMENTS = [
    ("buyers", "rule: {field: orders_count, gte: 1}"),
    ("loyal", "rule: {field: orders_count, gte: 3}"),
]
SEQUENCES = [
    """
    sequence: welcome_buyer
    trigger: {segment: buyers}
    audience: loyal
    reentry: never
    steps:
      - send: {channel: email, template: wb/one, fallback: [sms]}
      - wait: 2d
      - send: {channel: sms, template: wb/two}
    """,
    """
    sequence: ab_buyer
    trigger: {segment: buyers}
    reentry: after 30d
    steps:
      - split:
          - {name: a, percent: 50, steps: [{send: {channel: email, template: ab/a}}]}
          - {name: b, percent: 50, steps: [{send: {channel: email, template: ab/b}}]}
    """,
    """
    sequence: two_sends
    trigger: {segment: buyers}
    reentry: always
    steps:
      - send: {channel: email, template: ts/one}
      - send: {channel: zalo_zns, template: ts/two}
      - exit: sent_both
    """,
]


def _setup(session: Session) -> dict[int, str]:
    apply_segments(
        session,
        [load_segment_text(f"segment: {key}\nname: {key}\n{rule}\n", f"{key}.yaml")
         for key, rule in SEGMENTS],
    )
    session.commit()
    for text in SEQUENCES:
        apply_yaml(session, text)
    names = {}
    for index, orders in enumerate([3, 1, 0, 5, 4, 2, 7, 1]):
        names[make_contact(session, orders_count=orders)] = f"c{index}"
    return names


def _history(session: Session, names: dict[int, str], now: Any) -> None:
    """Earlier enrollments that block re-entry, and a contact with another pending event."""
    by_name = {v: k for k, v in names.items()}
    keys = {s.key: s for s in session.scalars(select(Sequence))}
    for key, contact, state, ago in (
        ("welcome_buyer", "c3", "done", 400),  # never: blocked for ever
        ("ab_buyer", "c4", "waiting", 1),  # after 30d: blocked while running
        ("ab_buyer", "c5", "done", 10),  # after 30d: blocked, entered 10 days ago
        ("ab_buyer", "c6", "done", 40),  # after 30d: allowed again
    ):
        sequence = keys[key]
        assert sequence.current_version_id is not None
        session.add(
            Enrollment(sequence_id=sequence.id, version_id=sequence.current_version_id,
                       contact_id=by_name[contact], state=state, cursor="9", context={},
                       entered_at=now - timedelta(days=ago))
        )
    record_event(session, "contact.updated", by_name["c6"], {}, "pending:c6")
    session.commit()


def _snapshot(session: Session, names: dict[int, str]) -> tuple[list[Any], list[Any]]:
    session.expire_all()
    keys = {s.id: s.key for s in session.scalars(select(Sequence))}
    enrolled = sorted(
        (keys[e.sequence_id], names[e.contact_id], e.state, e.cursor, e.next_run_at,
         sorted((e.context or {}).items()), e.exit_reason, e.finished_at is not None,
         e.trigger_event_id is not None)
        for e in session.scalars(select(Enrollment))
    )
    enrolled_by_id = {e.id: keys[e.sequence_id] for e in session.scalars(select(Enrollment))}
    sent = sorted(
        (enrolled_by_id[m.enrollment_id], names[m.contact_id], m.step_key, m.channel, m.template,
         m.status, m.purpose, list(m.fallback or []))
        for m in session.scalars(select(Message))
    )
    return enrolled, sent


def _reset(session: Session) -> None:
    for model in (Message, Enrollment, Event, SegmentMembership):
        session.execute(delete(model))
    session.commit()


def test_set_based_and_one_at_a_time_agree(session: Session, frozen_clock: FrozenClock) -> None:
    names = _setup(session)
    now = frozen_clock.now()

    _history(session, names, now)
    refresh_all(session, now)
    session.commit()
    for event_id in session.scalars(select(Event.id).order_by(Event.id)).all():
        process_event(session, event_id)
        session.commit()
    one_at_a_time = _snapshot(session, names)

    _reset(session)
    _history(session, names, now)
    refresh_all(session, now)
    session.commit()
    taken = process_segment_events(session, now)
    rest = process_pending_events(session, now)
    session.commit()
    set_based = _snapshot(session, names)

    assert taken > 0 and rest > 0  # both paths ran: c6 has another pending event
    assert session.scalar(select(Event.id).where(Event.processed_at.is_(None))) is None
    assert set_based == one_at_a_time
    enrolled, sent = set_based
    assert {(e[0], e[1]) for e in enrolled if e[8]} == {
        ("welcome_buyer", "c0"), ("welcome_buyer", "c4"), ("welcome_buyer", "c6"),
        *(("ab_buyer", c) for c in ("c0", "c1", "c3", "c6", "c7")),
        *(("two_sends", c) for c in ("c0", "c1", "c3", "c4", "c5", "c6", "c7")),
    }
    assert ("welcome_buyer", "c0", "0", "email", "wb/one", "queued", "marketing", ["sms"]) in sent


def test_a_waiting_enrollment_leaves_the_event_to_process_event(
    session: Session, frozen_clock: FrozenClock
) -> None:
    names = _setup(session)
    contact = next(c for c, n in names.items() if n == "c0")
    apply_yaml(
        session,
        """
        sequence: waits_for_buyers
        trigger: {event: lead.captured}
        steps:
          - wait_until: {event: segment.entered, timeout: 3d}
            on_event: [{send: {channel: email, template: w/hit}}]
        """,
    )
    sequence = session.scalars(select(Sequence).where(Sequence.key == "waits_for_buyers")).one()
    assert sequence.current_version_id is not None
    session.add(
        Enrollment(sequence_id=sequence.id, version_id=sequence.current_version_id,
                   contact_id=contact, state="waiting", cursor="0", context={},
                   waiting_for="segment.entered", entered_at=frozen_clock.now())
    )
    session.commit()
    refresh_all(session, frozen_clock.now())
    session.commit()
    process_segment_events(session, frozen_clock.now())
    mine = session.scalars(select(Event).where(Event.contact_id == contact)).all()
    assert mine and all(e.processed_at is None for e in mine)
    others = session.scalars(select(Event).where(Event.contact_id != contact)).all()
    assert others and all(e.processed_at is not None for e in others)


def test_plan_stops_at_a_step_that_depends_on_the_contact(
    session: Session, frozen_clock: FrozenClock
) -> None:
    _setup(session)
    versions = {s.key: s.current_version_id for s in session.scalars(select(Sequence))}
    now = frozen_clock.now()
    plan = plan_first_steps(load_version(session, versions["welcome_buyer"] or 0), now)
    assert plan is not None
    assert ([p for p, _ in plan.sends], plan.state, plan.cursor, plan.next_run_at) == (
        ["0"], "waiting", "2", now + timedelta(days=2))
    assert plan_first_steps(load_version(session, versions["ab_buyer"] or 0), now) is None


def test_a_contact_entering_one_segment_twice_is_left_to_process_event(
    session: Session, frozen_clock: FrozenClock
) -> None:
    """Enter, exit, enter again before any processing: re-entry 'always' enrols twice."""
    names = _setup(session)
    twice = next(c for c, n in names.items() if n == "c1")
    once = next(c for c, n in names.items() if n == "c7")

    def record() -> None:
        for n, (contact, kind) in enumerate(
            [(twice, "entered"), (once, "entered"), (twice, "exited"), (twice, "entered")]
        ):
            record_event(session, f"segment.{kind}", contact, {"segment": "buyers"}, f"s{n}")
        session.commit()

    record()
    for event_id in session.scalars(select(Event.id).order_by(Event.id)).all():
        process_event(session, event_id)
        session.commit()
    one_at_a_time = _snapshot(session, names)
    _reset(session)
    record()
    assert process_segment_events(session, frozen_clock.now()) == 1  # only c7's event
    process_pending_events(session, frozen_clock.now())  # c1's three, in order
    session.commit()
    assert session.scalar(select(Event.id).where(Event.processed_at.is_(None))) is None
    assert _snapshot(session, names) == one_at_a_time
    two_sends = [e for e in one_at_a_time[0] if e[0] == "two_sends"]
    assert [e[1] for e in two_sends] == ["c1", "c1", "c7"]


def test_a_dead_segment_event_stays_dead(session: Session, frozen_clock: FrozenClock) -> None:
    """A dead event leaves the pending list until retry_dead_events: the set-based path
    does not take it either."""
    names = _setup(session)
    dead_one, live_one = list(names)[:2]
    record_event(session, "segment.entered", dead_one, {"segment": "buyers"}, "dead")
    record_event(session, "segment.entered", live_one, {"segment": "buyers"}, "live")
    dead = session.scalars(select(Event).where(Event.source_event_id == "dead")).one()
    dead.attempts, dead.dead_at, dead.failure = 5, frozen_clock.now(), "boom"
    session.commit()
    assert process_segment_events(session, frozen_clock.now()) == 1
    session.refresh(dead)
    assert dead.processed_at is None and dead.dead_at is not None
    enrolled = set(session.scalars(select(Enrollment.contact_id)))
    assert live_one in enrolled and dead_one not in enrolled
