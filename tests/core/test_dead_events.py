"""A failing handler cannot block the others: savepoints, attempts, the dead-event list."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from admin_cli.main import app
from automation.core import clock, processing
from automation.core.config import Settings
from automation.core.eventlog import record_event
from automation.core.models import Contact, Enrollment, Event, SegmentMembership, Sequence
from automation.core.processing import process_event, process_pending_events
from automation.runtime import handlers
from automation.segments.rules import load_segment_text
from automation.segments.store import apply_segments
from automation.sequences import triggers
from automation.sequences.schema import parse_sequence_text
from automation.sequences.store import apply_definition

runner = CliRunner()
SEGMENT = """
segment: fresh_leads
name: Khách mới đăng ký
rule: {performed: lead.captured, within: 7d}
"""
SEQUENCE = """
sequence: welcome_on_lead
trigger: {event: lead.captured}
steps:
  - exit: done
"""
broken = {"on": True, "calls": 0}


def poison(session: Session, event: Event) -> None:
    """A handler with a bug for lead.captured (the issue's OverflowError at run time)."""
    broken["calls"] += 1
    if event.type == "lead.captured" and broken["on"]:
        session.add(Contact(email="half-written@example.vn", attributes={}, tags=[]))
        session.flush()
        raise OverflowError("date value out of range")


@pytest.fixture
def poisoned() -> Iterator[None]:
    """The canonical handler table with ``poison`` between segments and sequences."""
    table = list(handlers.HANDLERS)
    processing.use_handlers([*table[:2], poison, *table[2:]])
    broken.update(on=True, calls=0)
    yield
    handlers.install()


def _setup(session: Session) -> tuple[int, int]:
    apply_segments(session, [load_segment_text(textwrap.dedent(SEGMENT), "fresh.yaml")])
    apply_definition(session, parse_sequence_text(textwrap.dedent(SEQUENCE), "welcome.yaml"))
    contact = Contact(email="lan@example.vn", attributes={}, tags=[], last_inbound_at={})
    session.add(contact)
    session.commit()
    lead = record_event(session, "lead.captured", contact.id, {}, "form:1")
    assert lead is not None
    session.commit()
    return contact.id, lead.id


def test_failing_handler_keeps_the_others_work_and_dies_after_max_attempts(
    settings: Settings, session: Session, frozen_clock: clock.FrozenClock, poisoned: None
) -> None:
    contact_id, lead_id = _setup(session)

    assert process_event(session, lead_id, max_attempts=3) is False
    session.commit()
    # segments ran before the poison, sequences after it: both kept; the poison's row is not
    assert session.scalars(
        select(SegmentMembership).where(SegmentMembership.contact_id == contact_id)
    ).all()
    assert session.scalars(select(Enrollment).where(Enrollment.contact_id == contact_id)).all()
    assert session.scalars(
        select(Contact).where(Contact.email == "half-written@example.vn")
    ).first() is None
    event = session.get(Event, lead_id, populate_existing=True)
    assert event is not None and event.processed_at is None and event.dead_at is None
    assert event.attempts == 1 and event.failed_handlers == "test_dead_events.poison"
    assert event.failure is not None and "OverflowError: date value out of range" in event.failure

    # later attempts run only the failing handler; the third one makes the event dead
    calls = broken["calls"]
    assert process_event(session, lead_id, max_attempts=3) is False
    assert process_event(session, lead_id, max_attempts=3) is False
    session.commit()
    assert broken["calls"] == calls + 2
    assert len(session.scalars(select(Enrollment)).all()) == 1
    event = session.get(Event, lead_id, populate_existing=True)
    assert event is not None and event.attempts == 3 and event.dead_at is not None

    # processing moves on: the dead event is not pending, a new event is processed
    assert process_event(session, lead_id, max_attempts=3) is False
    other = record_event(session, "contact.updated", contact_id, {}, "crm:1")
    assert other is not None
    session.commit()
    assert process_pending_events(session, clock.now()) == 1
    assert session.get(Event, other.id, populate_existing=True).processed_at is not None  # type: ignore[union-attr]


def test_events_failed_and_retry_commands(
    settings: Settings, session: Session, frozen_clock: clock.FrozenClock, poisoned: None
) -> None:
    _, lead_id = _setup(session)
    for _ in range(5):  # EVENT_MAX_ATTEMPTS defaults to 5
        process_event(session, lead_id)
        session.commit()

    listed = runner.invoke(app, ["events", "failed", "--json"])
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [(r["id"], r["attempts"], r["handlers"]) for r in rows] == [
        (lead_id, 5, ["test_dead_events.poison"])
    ]
    assert "OverflowError" in rows[0]["reason"]
    table = runner.invoke(app, ["events", "failed"])
    assert table.exit_code == 0 and "Dead events (1)" in table.stdout

    nothing = runner.invoke(app, ["events", "retry"])
    assert nothing.exit_code != 0 and "Traceback" not in nothing.output
    assert "--all" in nothing.output
    bad = runner.invoke(app, ["events", "retry", "²"])
    assert bad.exit_code != 0 and "Traceback" not in bad.output

    broken["on"] = False  # the bug is fixed and deployed
    retried = runner.invoke(app, ["events", "retry", str(lead_id), "999", "--json"])
    assert retried.exit_code == 0, retried.output
    assert json.loads(retried.stdout) == {"retried": [lead_id], "not_dead": [999]}
    session.expire_all()
    assert process_pending_events(session, clock.now()) == 1
    event = session.get(Event, lead_id)
    assert event is not None and event.processed_at is not None and event.dead_at is None
    assert json.loads(runner.invoke(app, ["events", "failed", "--json"]).stdout) == []
    again = runner.invoke(app, ["events", "retry", "--all", "--json"])
    assert json.loads(again.stdout) == {"retried": [], "not_dead": []}


SECOND = """
sequence: welcome_second
trigger: {event: lead.captured}
steps:
  - exit: done
"""


def test_one_failing_sequence_does_not_undo_the_others_on_the_trigger(
    settings: Settings, session: Session, frozen_clock: clock.FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    contact_id, lead_id = _setup(session)
    apply_definition(session, parse_sequence_text(textwrap.dedent(SECOND), "second.yaml"))
    session.commit()
    real_enroll = triggers.enroll
    broken_sequence = {"on": True}

    def enroll(session: Session, sequence: Any, *args: Any, **kwargs: Any) -> Any:
        """The first sequence's enrolment writes, then fails (a definition from an old bug)."""
        enrollment = real_enroll(session, sequence, *args, **kwargs)
        if sequence.key == "welcome_on_lead" and broken_sequence["on"]:
            raise OverflowError("date value out of range")
        return enrollment

    monkeypatch.setattr(triggers, "enroll", enroll)
    assert process_event(session, lead_id) is False
    session.commit()
    keys = session.scalars(
        select(Sequence.key).join(Enrollment, Enrollment.sequence_id == Sequence.id)
    ).all()
    assert keys == ["welcome_second"]  # kept; the failing one rolled back alone
    event = session.get(Event, lead_id, populate_existing=True)
    assert event is not None and event.failed_handlers == "handlers.sequence_triggers"
    assert event.failure is not None and "welcome_on_lead: OverflowError" in event.failure

    broken_sequence["on"] = False
    assert process_event(session, lead_id) is True  # the retry enrols only the missing one
    session.commit()
    keys = session.scalars(
        select(Sequence.key).join(Enrollment, Enrollment.sequence_id == Sequence.id)
        .order_by(Sequence.key)
    ).all()
    assert keys == ["welcome_on_lead", "welcome_second"]
    assert contact_id is not None
