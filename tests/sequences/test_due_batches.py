"""The due pass advances a batch of enrollments together; one that fails is left alone."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.config import Settings
from automation.core.models import Enrollment
from automation.sequences.due import run_due_enrollments
from tests.sequences.helpers import apply_yaml, emit, enrollments, make_contact, messages

TWO_STEPS = """
sequence: two_steps
trigger: {event: lead.captured}
steps:
  - wait: 1d
  - send: {channel: email, template: lead_capture/welcome}
  - wait: 2d
"""


def test_a_due_batch_advances_each_enrollment_and_leaves_a_broken_one_alone(
    settings: Settings, session: Session, frozen_clock: clock.FrozenClock
) -> None:
    apply_yaml(session, TWO_STEPS)
    people = [make_contact(session) for _ in range(4)]
    for contact_id in people:
        emit(session, "lead.captured", contact_id)
    broken = enrollments(session, people[2])[0].id
    session.execute(update(Enrollment).where(Enrollment.id == broken).values(cursor="7.nope"))
    session.commit()

    frozen_clock.advance(timedelta(days=1, minutes=1))
    assert run_due_enrollments(session, clock.now()) == 3
    assert sorted(m.contact_id for m in messages(session)) == sorted(
        c for c in people if c != people[2]
    )
    for enrollment in enrollments(session):
        if enrollment.id == broken:
            assert (enrollment.state, enrollment.cursor) == ("waiting", "7.nope")
        else:
            assert (enrollment.state, enrollment.cursor) == ("waiting", "3")
    assert run_due_enrollments(session, clock.now()) == 0  # the broken one fails again, alone
