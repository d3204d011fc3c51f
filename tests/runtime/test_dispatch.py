"""Messages created during a scheduler pass reach the send queues once the pass commits."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import dramatiq
import pytest
from sqlalchemy.orm import Session

from automation.core.clock import FrozenClock
from automation.core.config import Settings
from automation.core.db import session_factory
from automation.runtime.broker import configure_broker
from automation.runtime.scheduler import run_pass
from tests.sequences.helpers import apply_yaml, emit, make_contact, messages

WELCOME = """
sequence: welcome_later
purpose: transactional
trigger: {event: lead.captured}
steps:
  - wait: 1h
  - send: {channel: email, template: lead_capture/welcome}
"""


@pytest.fixture
def stub_broker(settings: Settings) -> Iterator[dramatiq.Broker]:
    """The in-process broker (REDIS_URL unset) with the send actors declared on it."""
    from automation.runtime import wiring

    broker = configure_broker(settings)
    wiring.install()
    yield broker
    broker.flush_all()


def queued_ids(broker: dramatiq.Broker, queue: str) -> list[int]:
    """Message ids carried by the actor messages waiting on ``queue``."""
    found: list[int] = []
    for raw in list(broker.queues[queue].queue):  # type: ignore[attr-defined]
        found.extend(dramatiq.Message.decode(raw).args[0])
    return sorted(found)


def test_scheduler_pass_hands_new_messages_to_the_send_queue(
    session: Session, settings: Settings, frozen_clock: FrozenClock, stub_broker: dramatiq.Broker
) -> None:
    apply_yaml(session, WELCOME)
    contacts = [make_contact(session) for _ in range(3)]
    for contact in contacts:
        emit(session, "lead.captured", contact)
    assert messages(session) == []

    later = frozen_clock.now() + timedelta(hours=1)
    frozen_clock.set(later)
    counts = run_pass(session_factory(settings), later)

    assert counts["due_enrollments"] == 3
    created = sorted(m.id for m in messages(session))
    assert len(created) == 3
    assert queued_ids(stub_broker, "email") == created
