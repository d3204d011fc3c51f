"""The demo's opens and clicks are decided by what a message is, not by its row id."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import delete
from sqlalchemy.orm import Session, sessionmaker

from automation.core import clock
from automation.core.models import Contact, Message
from demo.engagement import decide, identity
from demo.simulate import Simulation

SENT = datetime(2026, 10, 2, 3, 0, tzinfo=UTC)


@pytest.fixture
def backend() -> str:
    """The demo runs on the embedded SQLite database."""
    return "sqlite"


def _engagement(session: Session, filler: int) -> tuple[list[int], list[tuple[datetime, str, str]]]:
    """Send the same 20 messages after ``filler`` unsent rows; their ids and decided clicks."""
    contact = Contact(email="lan@example.vn")
    session.add(contact)
    session.flush()
    for n in range(filler):
        session.add(Message(contact_id=contact.id, step_key=f"filler{n}", channel="sms",
                            template="t", status="failed"))  # fmt: skip
    session.flush()
    messages = [
        Message(contact_id=contact.id, step_key=f"s{n}", channel="email", template="t",
                status="sent", sent_at=SENT, updated_at=SENT)  # fmt: skip
        for n in range(20)
    ]
    session.add_all(messages)
    session.commit()
    sim = Simulation(sessionmaker(bind=session.get_bind()), clock.FrozenClock(SENT), seed=42)
    sim.schedule_engagement()
    steps = {m.id: m.step_key for m in messages}
    return sorted(steps), [(when, kind, steps[mid]) for when, mid, kind in sim.clicks]


def test_clicks_do_not_depend_on_row_ids(session: Session) -> None:
    first_ids, first = _engagement(session, filler=0)
    session.execute(delete(Contact))
    session.commit()
    later_ids, later = _engagement(session, filler=25)
    assert set(first_ids).isdisjoint(later_ids)  # the same messages, other row ids
    assert first and first == later


def test_decision_is_keyed_on_the_identity() -> None:
    name = identity("lan@example.vn", "nurture", SENT, "2", "email")
    assert decide(42, name, "email", SENT) == decide(42, name, "email", SENT)
    others = {tuple(decide(42, identity(f"c{n}", "nurture", SENT, "2", "email"), "email", SENT))
              for n in range(40)}  # fmt: skip
    assert len(others) > 1  # different messages are decided differently
