"""wait_until in an event batch: the waited events read up front include an event that
only the orders handler tied to the contact (a webhook without customer details)."""

from __future__ import annotations

import textwrap
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.config import Settings
from automation.core.eventlog import record_event
from automation.core.models import Contact, Enrollment, Message
from automation.core.processing import process_event, process_pending_events
from automation.sequences.schema import parse_sequence_text
from automation.sequences.store import apply_definition
from tests.conftest import _truncate

ORDER_STATUS = """
sequence: order_paid
trigger: {event: order.created}
reentry: always
steps:
  - wait_until: {event: order.paid, timeout: 12h}
    on_event:
      - send: {channel: email, template: order_status/paid}
"""


def _story(session: Session) -> list[int]:
    """An order placed by a known contact, then paid by a webhook that names only the order."""
    apply_definition(session, parse_sequence_text(textwrap.dedent(ORDER_STATUS), "o.yaml"))
    contact = Contact(email="buyer@example.vn", attributes={}, tags=[], last_inbound_at={})
    session.add(contact)
    session.flush()
    at = clock.now() - timedelta(hours=2)
    ids = []
    for type_, contact_id, minutes in (("order.created", contact.id, 0), ("order.paid", None, 5)):
        event = record_event(session, type_, contact_id, {"order_id": "A-1", "total": 100_000},
                             f"{type_}:A-1", occurred_at=at + timedelta(minutes=minutes),
                             source="shop")  # fmt: skip
        assert event is not None
        ids.append(event.id)
    session.commit()
    return ids


def _outcome(session: Session) -> tuple[list[tuple[str, str]], list[str]]:
    session.expire_all()
    enrollments = [(e.state, e.cursor) for e in session.scalars(select(Enrollment))]
    return enrollments, [m.step_key for m in session.scalars(select(Message))]


def test_a_paid_webhook_without_customer_wakes_the_wait_in_a_batch_as_alone(
    settings: Settings, session: Session, frozen_clock: clock.FrozenClock
) -> None:
    _story(session)
    assert process_pending_events(session, clock.now()) == 2
    batched = _outcome(session)
    assert batched == ([("done", "0.on_event.1")], ["0.on_event.0"])

    session.close()
    _truncate(settings.database_url)
    for event_id in _story(session):
        process_event(session, event_id)
        session.commit()
    assert _outcome(session) == batched
