"""process_event: transitions recorded while processing an event are processed at once."""

from __future__ import annotations

import textwrap

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core import clock, processing
from automation.core.eventlog import record_event
from automation.core.models import Contact, Enrollment, Event
from automation.core.processing import process_event
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
SEQUENCE = """
sequence: welcome_on_segment
trigger: {segment: fresh_leads}
steps:
  - exit: done
"""


def test_segment_entry_enrolls_in_the_same_processing(
    session: Session, frozen_clock: clock.FrozenClock
) -> None:
    apply_segments(session, [load_segment_text(textwrap.dedent(SEGMENT), "fresh.yaml")])
    apply_definition(session, parse_sequence_text(textwrap.dedent(SEQUENCE), "welcome.yaml"))
    contact = Contact(email="lan@example.vn", attributes={}, tags=[], last_inbound_at={})
    session.add(contact)
    session.commit()
    lead = record_event(session, "lead.captured", contact.id, {}, "form:1")
    assert lead is not None

    assert process_event(session, lead.id) is True
    session.commit()

    entered = session.scalars(
        select(Event).where(Event.type == "segment.entered", Event.contact_id == contact.id)
    ).one()
    assert entered.processed_at is not None
    query = select(Enrollment).where(Enrollment.contact_id == contact.id)
    enrollment = session.scalars(query).one()
    assert enrollment.trigger_event_id == entered.id


def test_the_runtime_installs_its_handler_table_in_order() -> None:
    handlers.install()
    assert list(handlers.HANDLERS) == processing.HANDLERS
    names = [h.__name__ for h in processing.HANDLERS]
    assert names == [
        "apply_commerce_event", "record_conversions", "on_event", "sequence_exits",
        "sequence_wakeups",
        "sequence_triggers",
    ]
    handlers.install()  # idempotent: installing again does not run a handler twice
    assert len(processing.HANDLERS) == len(handlers.HANDLERS)
