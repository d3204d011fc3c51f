"""Shared helpers for the segment tests: build contacts and facts quickly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from automation.core.models import Contact, Event, Message, MessageEvent

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def ago(days: float = 0, hours: float = 0) -> datetime:
    """A moment before NOW."""
    return NOW - timedelta(days=days, hours=hours)


def make_contact(session: Session, **fields: Any) -> Contact:
    """Insert a contact with sane defaults."""
    fields.setdefault("attributes", {})
    fields.setdefault("tags", [])
    fields.setdefault("last_inbound_at", {})
    fields.setdefault("created_at", ago(days=400))
    contact = Contact(**fields)
    session.add(contact)
    session.flush()
    return contact


_counter = {"event": 0, "message": 0}


def add_event(
    session: Session, contact: Contact | int, type_: str, at: datetime, **properties: Any
) -> Event:
    """Insert a shop event for a contact."""
    _counter["event"] += 1
    cid = contact if isinstance(contact, int) else contact.id
    event = Event(
        source="test",
        source_event_id=f"ev-{_counter['event']}",
        type=type_,
        contact_id=cid,
        occurred_at=at,
        payload={"properties": properties},
    )
    session.add(event)
    session.flush()
    return event


def add_engagement(
    session: Session, contact: Contact | int, channel: str, type_: str, at: datetime
) -> MessageEvent:
    """Insert a message on a channel and one message event for it."""
    _counter["message"] += 1
    cid = contact if isinstance(contact, int) else contact.id
    message = Message(
        step_key=f"step-{_counter['message']}",
        contact_id=cid,
        channel=channel,
        template="t",
        fallback=[],
        rendered={},
        links={},
        created_at=at,
    )
    session.add(message)
    session.flush()
    event = MessageEvent(
        message_id=message.id, type=type_, provider="test", occurred_at=at, payload={}
    )
    session.add(event)
    session.flush()
    return event
