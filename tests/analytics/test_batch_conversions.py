"""Orders of several contacts in one event batch round: each one's goal and attribution is
credited, as when the orders are processed one at a time."""

from __future__ import annotations

import textwrap
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.clock import FrozenClock
from automation.core.config import Settings
from automation.core.eventlog import record_event
from automation.core.models import Message
from automation.core.models_analytics import Attribution, GoalConversion
from automation.core.processing import process_pending_events
from automation.feedback.results import record_message_event
from automation.sequences.schema import parse_sequence_text
from automation.sequences.store import apply_definition
from tests.analytics.helpers import feed, new_contacts

PROMO = """
sequence: promo
purpose: marketing
trigger: {event: lead.captured}
goal: {event: order.created, within: 7d}
steps:
  - send: {channel: email, template: promo/offer}
"""


def test_a_round_of_orders_credits_every_buyers_goal_and_click(
    settings: Settings, session: Session, frozen_clock: FrozenClock
) -> None:
    apply_definition(session, parse_sequence_text(textwrap.dedent(PROMO), "promo.yaml"))
    session.commit()
    people = new_contacts(session, 4)
    feed(session, [("lead.captured", c, {}) for c in people])
    frozen_clock.advance(timedelta(hours=2))
    for message in session.scalars(select(Message).order_by(Message.id)).all():
        record_message_event(session, message, "clicked", "test", f"click:{message.id}")
    session.commit()
    process_pending_events(session, frozen_clock.now())  # the clicks' own events

    frozen_clock.advance(timedelta(days=1))
    for n, contact_id in enumerate(people):  # one round: four contacts, four orders
        record_event(session, "order.created", contact_id,
                     {"order_id": f"P-{n}", "total": 200_000}, f"order:{n}")  # fmt: skip
    session.commit()
    assert process_pending_events(session, frozen_clock.now()) == 4

    goals = session.scalars(select(GoalConversion)).all()
    assert sorted(g.contact_id for g in goals) == people
    credits = session.scalars(select(Attribution)).all()
    assert sorted((a.contact_id, a.model, a.revenue) for a in credits) == [
        (c, "click", 200_000) for c in people
    ]
