"""record_event stores an internal event once."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core.eventlog import record_event
from automation.core.models import Contact, Event


def test_record_event_once(session: Session) -> None:
    contact = Contact(email="a@example.vn", attributes={}, tags=[], last_inbound_at={})
    session.add(contact)
    session.flush()
    first = record_event(session, "segment.entered", contact.id, {"segment": "vip"}, "seg:1")
    assert first is not None and first.id is not None
    assert first.payload == {"properties": {"segment": "vip"}}
    assert first.source == "internal" and first.contact_id == contact.id
    again = record_event(session, "segment.entered", contact.id, {"segment": "vip"}, "seg:1")
    assert again is None
    other = record_event(session, "segment.entered", contact.id, {}, "seg:1", source="shopify")
    assert other is not None
    session.commit()
    assert session.scalar(select(func.count()).select_from(Event)) == 2
