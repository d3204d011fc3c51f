"""automation.feedback.results as plain functions on a session (no HTTP, no broker)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core.models import Consent, Contact, Event, MessageEvent, Suppression
from automation.core.processing import process_event
from automation.feedback import results as feedback


@pytest.mark.parametrize(
    ("current", "new", "expected"),
    [
        ("sent", "delivered", "delivered"),
        ("delivered", "sent", None),
        ("sending", "delivered", "delivered"),
        ("opened", "delivered", None),
        ("opened", "clicked", "clicked"),
        ("clicked", "opened", None),
        ("read", "opened", None),
        ("delivered", "bounced", "bounced"),
        ("clicked", "bounced", None),
        ("bounced", "delivered", None),
        ("failed", "opened", None),
        ("skipped", "delivered", None),
        ("sent", "temporary_failure", None),
        ("replied", "complained", "complained"),
    ],
)
def test_status_moves_forward_only(current: str, new: str, expected: str | None) -> None:
    assert feedback.next_status(current, new) == expected


def test_record_message_event_once_and_feeds_process_event(
    session: Session, make_message: Any
) -> None:
    msg = make_message(channel="zalo_zns", address="+84912345678")
    first = feedback.record_message_event(session, msg, "delivered", "zalo", "m1:recv", {"a": 1})
    again = feedback.record_message_event(session, msg, "delivered", "zalo", "m1:recv", {"a": 2})
    other = feedback.record_message_event(session, msg, "delivered", "esms", "m1:recv")
    session.commit()
    assert not first.duplicate and first.status_changed and len(first.event_ids) == 1
    assert again.duplicate and again.event_ids == []
    assert not other.duplicate and other.event_ids == []  # message.delivered once per message
    assert session.scalar(select(func.count()).select_from(MessageEvent)) == 2
    event = session.get(Event, first.event_ids[0])
    assert event is not None and event.contact_id == msg.contact_id
    assert event.payload["properties"]["channel"] == "zalo_zns"
    assert process_event(session, event.id) is True  # flows into the handlers
    assert process_event(session, event.id) is False


def test_suppress_and_unsubscribe_are_idempotent(session: Session, make_message: Any) -> None:
    msg = make_message(channel="sms", address="0912 345 678", phone="+84912345678")
    assert feedback.suppress(session, "sms", "0912 345 678", "unsubscribed", "marketing") is True
    assert feedback.suppress(session, "sms", "+84912345678", "hard_bounce", "all") is False
    row = session.scalars(select(Suppression)).one()
    assert (row.address, row.scope, row.reason) == ("+84912345678", "all", "hard_bounce")
    contact = session.get(Contact, msg.contact_id)
    assert contact is not None
    ids = feedback.unsubscribe(session, contact, "zalo_oa", "test")
    assert len(ids) == 1 and feedback.unsubscribe(session, contact, "zalo", "test") == []
    session.commit()
    consent = session.scalars(select(Consent)).one()
    assert (consent.channel, consent.status) == ("zalo", "denied")
    assert session.scalar(select(func.count()).select_from(Event)) == 1
