"""A provider callback that lands while the send is in flight must not be overwritten."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.config import Settings
from automation.core.db import session_factory
from automation.core.models import Message
from automation.delivery.send import deliver
from automation.feedback.results import record_message_event
from channels.base import Channel, OutboundMessage, SendResult
from tests.delivery.helpers import consent, contact, message

NOON = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)


class CallbackFirstChannel(Channel):
    """Answers like a provider whose delivery receipt arrives before its HTTP reply."""

    name = "sms"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def send(self, msg: OutboundMessage) -> SendResult:
        with session_factory(self.settings)() as other:
            row = other.get(Message, msg.id)
            assert row is not None
            record_message_event(other, row, "delivered", "esms", f"dlr-{msg.id}", {}, NOON)
            other.commit()
        return SendResult(provider_message_id=f"p-{msg.id}")


def test_delivered_callback_during_send_is_kept(
    session: Session, dsettings: Settings, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    c = contact(session)
    consent(session, c, "sms")
    m = message(session, c, "sms")
    session.commit()

    result = deliver(session, m.id, CallbackFirstChannel(dsettings))

    assert result.sent == [m.id]
    with session_factory(dsettings)() as check:
        row = check.get(Message, m.id)
        assert row is not None
        assert row.status == "delivered"
        assert row.provider_message_id == f"p-{m.id}"
        assert row.sent_at is not None
