"""insert_enrollments: new enrollments become persistent with their ids, every column
written, on both backends (PostgreSQL: one JSON document; SQLite or a repeated pair: the
ORM's insert)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.clock import FrozenClock
from automation.core.models import Enrollment, Sequence
from automation.sequences.inserts import insert_enrollments
from tests.sequences.helpers import apply_yaml, make_contact

WELCOME = """
sequence: welcome
purpose: marketing
trigger: {event: lead.captured}
steps:
  - send: {channel: email, template: welcome/hello}
"""


def _new(session: Session, contact_id: int, at: object, **extra: object) -> Enrollment:
    sequence = session.scalars(select(Sequence)).one()
    return Enrollment(
        sequence_id=sequence.id, version_id=sequence.current_version_id, contact_id=contact_id,
        state="active", cursor="0", next_run_at=at, context={"holdout": True, "n": 10**20},
        trigger_event_id=None, entered_at=at, **extra,
    )  # fmt: skip


def _statements(session: Session) -> list[str]:
    seen: list[str] = []
    sa.event.listen(session.get_bind(), "before_cursor_execute",
                    lambda *args: seen.append(args[2]))  # fmt: skip
    return seen


def test_new_enrollments_are_persistent_and_fully_written(
    session: Session, frozen_clock: FrozenClock
) -> None:
    apply_yaml(session, WELCOME)
    at = frozen_clock.now()
    contacts = [make_contact(session) for _ in range(3)]
    created = [_new(session, c, at) for c in contacts]
    insert_enrollments(session, created)
    seen = _statements(session)
    # ids given, identity map holds them, and reading every column needs no query
    assert all(e.id is not None and e in session for e in created)
    assert [(e.contact_id, e.state, e.waiting_for, e.exit_reason, e.finished_at)
            for e in created] == [(c, "active", None, None, None) for c in contacts]  # fmt: skip
    assert seen == []
    session.commit()
    session.expire_all()
    stored = session.scalars(select(Enrollment).order_by(Enrollment.id)).all()
    assert [(e.id, e.contact_id, e.cursor, e.context, e.next_run_at, e.entered_at)
            for e in stored] == [(e.id, e.contact_id, "0", {"holdout": True, "n": 10**20}, at, at)
                                 for e in created]  # fmt: skip


def test_a_repeated_pair_is_inserted_twice_not_merged(
    session: Session, frozen_clock: FrozenClock
) -> None:
    apply_yaml(session, WELCOME)
    contact = make_contact(session)
    at = frozen_clock.now()
    created = [_new(session, contact, at), _new(session, contact, at)]
    insert_enrollments(session, created)
    session.commit()
    assert created[0].id != created[1].id
    assert session.scalar(select(sa.func.count()).select_from(Enrollment)) == 2
