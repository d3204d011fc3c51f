"""Helpers for sequence tests: apply YAML, create contacts, emit and process events."""

from __future__ import annotations

import itertools
import textwrap
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.eventlog import record_event
from automation.core.models import Contact, Enrollment, Message, MessageEvent
from automation.core.processing import process_event
from automation.sequences.schema import parse_sequence_text
from automation.sequences.store import ApplyResult, apply_definition

_ids = itertools.count(1)


def apply_yaml(session: Session, text: str, file: str = "test.yaml") -> ApplyResult:
    """Parse, apply and commit a sequence definition."""
    result = apply_definition(session, parse_sequence_text(textwrap.dedent(text), file))
    session.commit()
    return result


def make_contact(session: Session, **fields: Any) -> int:
    """A committed contact with an email address."""
    n = next(_ids)
    contact = Contact(email=fields.pop("email", f"c{n}@example.vn"), first_name="Lan", **fields)
    session.add(contact)
    session.commit()
    return contact.id


def emit(
    session: Session,
    type: str,
    contact_id: int,
    properties: dict[str, Any] | None = None,
    occurred_at: datetime | None = None,
) -> int:
    """Record an event for the contact, process it and commit; returns the event id."""
    event = record_event(
        session, type, contact_id, properties or {}, f"test:{next(_ids)}", occurred_at=occurred_at
    )
    assert event is not None
    process_event(session, event.id)
    session.commit()
    return event.id


def enrollments(session: Session, contact_id: int | None = None) -> list[Enrollment]:
    """Enrollments (fresh from the database), oldest first."""
    session.expire_all()
    query = select(Enrollment).order_by(Enrollment.id)
    if contact_id is not None:
        query = query.where(Enrollment.contact_id == contact_id)
    return list(session.scalars(query))


def messages(session: Session, contact_id: int | None = None) -> list[Message]:
    """Outbox rows, oldest first."""
    session.expire_all()
    query = select(Message).order_by(Message.id)
    if contact_id is not None:
        query = query.where(Message.contact_id == contact_id)
    return list(session.scalars(query))


def engage(session: Session, message: Message, type: str = "clicked") -> None:
    """Store an engagement result (clicked/opened/replied) for a message."""
    session.add(
        MessageEvent(
            message_id=message.id,
            type=type,
            provider="test",
            provider_event_id=f"pe{next(_ids)}",
            occurred_at=clock.now(),
        )
    )
    session.commit()
