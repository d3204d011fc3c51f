"""Event batches keep the definitions they read (lasting_memo) only while none changes."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.clock import FrozenClock
from automation.core.eventlog import record_event
from automation.core.models import Enrollment, Message
from automation.core.processing import process_events
from automation.sequences.store import pause_sequence, resume_sequence
from tests.sequences.helpers import apply_yaml, make_contact

WELCOME = """
sequence: welcome
trigger: {{event: lead.captured}}
steps:
  - send: {{channel: email, template: {template}}}
"""


def _lead(session: Session, contact_id: int, key: str) -> tuple[int, list[str]]:
    """Store and batch-process a lead.captured; (its enrollments' version, their templates)."""
    event = record_event(session, "lead.captured", contact_id, {}, key)
    assert event is not None
    session.commit()
    process_events(session, [event.id])
    versions = session.scalars(
        select(Enrollment.version_id).where(Enrollment.contact_id == contact_id)
    ).all()
    templates = session.scalars(
        select(Message.template).where(Message.contact_id == contact_id)
    ).all()
    return (versions[0] if versions else 0), list(templates)


def test_a_definition_changed_between_batches_is_read_by_the_next_batch(
    session: Session, frozen_clock: FrozenClock
) -> None:
    first = apply_yaml(session, WELCOME.format(template="welcome/one")).version.id
    assert _lead(session, make_contact(session), "a") == (first, ["welcome/one"])
    pause_sequence(session, "welcome")
    session.commit()
    assert _lead(session, make_contact(session), "b") == (0, [])  # paused: nobody enrols
    resume_sequence(session, "welcome")
    session.commit()
    second = apply_yaml(session, WELCOME.format(template="welcome/two")).version.id
    assert second != first
    assert _lead(session, make_contact(session), "c") == (second, ["welcome/two"])
