"""process_pending_events in batches: one failing event is isolated, a crash loses nothing."""

from __future__ import annotations

import textwrap
from collections.abc import Iterator

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from automation.core import clock, outbox, processing
from automation.core.config import Settings
from automation.core.eventlog import record_event
from automation.core.models import Contact, Enrollment, Event, Message, SegmentMembership
from automation.core.processing import process_pending_events
from automation.runtime import handlers
from automation.segments.rules import load_segment_text
from automation.segments.store import apply_segments
from automation.sequences.schema import parse_sequence_text
from automation.sequences.store import apply_definition

SEGMENT = """
segment: fresh_leads
name: Khách mới đăng ký
rule: {performed: lead.captured, within: 7d}
"""
SEQUENCES = (
    """
sequence: welcome_on_lead
trigger: {event: lead.captured}
steps:
  - send: {channel: email, template: lead_capture/welcome}
  - wait: 1d
  - exit: done
""",
    """
sequence: welcome_on_segment
trigger: {segment: fresh_leads}
steps:
  - exit: done
""",
)
failing: dict[str, object] = {"email": None, "error": None}


def trap(session: Session, event: Event) -> None:
    """Fails for the lead of one contact (after writing), like a handler with a bug."""
    contact = session.get(Contact, event.contact_id) if event.contact_id else None
    if event.type == "lead.captured" and contact is not None and contact.email == failing["email"]:
        session.add(Contact(email="half-written@example.vn", attributes={}, tags=[]))
        session.flush()
        raise failing["error"]  # type: ignore[misc]


@pytest.fixture
def trapped() -> Iterator[None]:
    """The runtime's handler table with ``trap`` after segments, before sequences."""
    table = list(handlers.HANDLERS)
    processing.use_handlers([*table[:3], trap, *table[3:]])
    yield
    handlers.install()
    failing.update(email=None, error=None)


def _leads(session: Session, count: int) -> list[tuple[int, int]]:
    apply_segments(session, [load_segment_text(textwrap.dedent(SEGMENT), "fresh.yaml")])
    for text in SEQUENCES:
        apply_definition(session, parse_sequence_text(textwrap.dedent(text), "s.yaml"))
    pairs = []
    for n in range(count):
        contact = Contact(email=f"lead{n}@example.vn", attributes={}, tags=[], last_inbound_at={})
        session.add(contact)
        session.flush()
        lead = record_event(session, "lead.captured", contact.id, {}, f"form:{n}")
        assert lead is not None
        pairs.append((contact.id, lead.id))
    session.commit()
    return pairs


def _enrolled(session: Session, contact_id: int) -> int:
    query = select(Enrollment).where(Enrollment.contact_id == contact_id)
    return len(session.scalars(query).all())


def test_one_failing_event_never_fails_the_others_in_its_batch(
    settings: Settings, session: Session, frozen_clock: clock.FrozenClock, trapped: None
) -> None:
    pairs = _leads(session, 4)
    failing.update(email="lead2@example.vn", error=OverflowError("date value out of range"))

    assert process_pending_events(session, clock.now()) == 3  # segment entries inline, uncounted
    session.expire_all()
    for n, (contact_id, lead_id) in enumerate(pairs):
        event = session.get(Event, lead_id)
        assert event is not None
        if n == 2:  # recorded per the rules; the work of the handlers before it is kept
            assert event.processed_at is None and event.attempts == 1
            assert event.failed_handlers == "test_event_batches.trap"
            assert event.failure is not None and "OverflowError" in event.failure
            assert _enrolled(session, contact_id) == 2  # sequences ran after the trap
        else:
            assert event.processed_at is not None and event.attempts == 0
            assert _enrolled(session, contact_id) == 2  # on the lead and on the segment entry
        memberships = select(SegmentMembership).where(SegmentMembership.contact_id == contact_id)
        assert len(session.scalars(memberships).all()) == 1
    assert session.scalar(select(Contact).where(Contact.email == "half-written@example.vn")) is None

    failing["email"] = None  # fixed: the next pass runs only the failed handler
    assert process_pending_events(session, clock.now()) == 1
    session.expire_all()
    assert all(_enrolled(session, contact_id) == 2 for contact_id, _ in pairs)
    assert session.scalars(select(Event).where(Event.processed_at.is_(None))).all() == []


def test_a_crash_mid_batch_loses_nothing_and_duplicates_nothing(
    settings: Settings, session: Session, frozen_clock: clock.FrozenClock, trapped: None
) -> None:
    pairs = _leads(session, 3)
    gone = OperationalError("SELECT", {}, Exception("server closed the connection"))
    failing.update(email="lead1@example.vn", error=gone)

    with pytest.raises(OperationalError):  # the database failed: the whole batch is undone
        process_pending_events(session, clock.now())
    session.rollback()
    assert len(session.scalars(select(Event).where(Event.processed_at.is_(None))).all()) == 3
    assert session.scalars(select(Enrollment)).all() == []
    assert session.scalars(select(SegmentMembership)).all() == []

    failing["email"] = None  # the database is back: the next pass processes every event once
    assert process_pending_events(session, clock.now()) == 3
    session.expire_all()
    assert all(_enrolled(session, contact_id) == 2 for contact_id, _ in pairs)
    assert process_pending_events(session, clock.now()) == 0


def test_a_batch_writes_its_sends_at_its_end_and_hands_each_to_the_queues_once(
    settings: Settings, session: Session, frozen_clock: clock.FrozenClock
) -> None:
    pairs = _leads(session, 3)
    handed: list[int] = []
    previous = outbox._SINKS.get("messages")
    outbox.register_sink("messages", lambda bind, ids: handed.extend(ids))
    try:
        assert process_pending_events(session, clock.now()) == 3
    finally:
        outbox._SINKS.pop("messages", None)
        if previous is not None:
            outbox.register_sink("messages", previous)
    rows = session.scalars(select(Message)).all()
    assert sorted(m.contact_id for m in rows) == sorted(c for c, _ in pairs)  # one welcome each
    assert sorted(handed) == sorted(m.id for m in rows)
