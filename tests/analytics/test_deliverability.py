"""Per-channel deliverability and per-step counts from outbox rows (both backends)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.analytics.queries import Cohort
from automation.analytics.report import build_report
from automation.core import clock
from automation.core.clock import FrozenClock
from automation.core.models import Message, MessageEvent
from tests.analytics.helpers import feed, new_contacts
from tests.sequences.helpers import apply_yaml

ZNS_FIRST = """
sequence: zns_first
trigger: {event: lead.captured}
steps:
  - send: {channel: zalo_zns, template: promo/offer, fallback: [sms]}
"""


def test_bounces_complaints_and_fallbacks_per_channel(
    session: Session, frozen_clock: FrozenClock
) -> None:
    apply_yaml(session, ZNS_FIRST)
    feed(session, [("lead.captured", c, {}) for c in new_contacts(session, 3)])
    first, second, third = session.scalars(select(Message).order_by(Message.id)).all()
    at = clock.now()
    first.status, first.error = "failed", "-118 no Zalo account"
    second.status, second.sent_at = "bounced", at
    third.status, third.sent_at = "clicked", at
    child = Message(
        enrollment_id=first.enrollment_id, step_key="0#fallback:sms", contact_id=first.contact_id,
        channel="sms", template=first.template, status="sent", sent_at=at,
        fallback_from_id=first.id, fallback=[], rendered={}, links={},
    )  # fmt: skip
    session.add(child)
    session.flush()
    for n, (message, kind) in enumerate(
        ((third, "opened"), (third, "clicked"), (third, "clicked"), (child, "complained"))
    ):
        session.add(MessageEvent(message_id=message.id, type=kind, provider="test",
                                 provider_event_id=f"pe{n}", occurred_at=at))  # fmt: skip
        session.flush()
    session.commit()

    report = build_report(session, Cohort())
    channels = {row["channel"]: row for row in report["channels"]}
    zns, sms = channels["zalo_zns"], channels["sms"]
    assert (zns["sent"], zns["delivered"], zns["bounced"], zns["fallback"]) == (2, 1, 1, 1)
    assert (sms["sent"], sms["delivered"], sms["complained"]) == (1, 1, 1)
    [seq] = report["sequences"]
    steps = {(row["step"], row["channel"]): row for row in seq["steps"]}
    assert steps[("0", "zalo_zns")]["clicked"] == 1  # two click events, one message
    assert steps[("0", "zalo_zns")]["opened"] == 1
    assert steps[("0", "sms")]["fallback"] == 1
    assert (seq["enrolled"], seq["sent"], seq["delivered"]) == (3, 3, 2)
    assert [day["sent"] for day in report["daily"]] == [3]
