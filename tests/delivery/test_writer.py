"""The group-commit writer: many senders' sent outcomes in one transaction."""

from __future__ import annotations

import threading

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.models import Contact, Event, Message
from automation.delivery.outcome import BatchResult
from automation.delivery.writer import GroupWriter


def _sending(session: Session, count: int) -> list[int]:
    contact = Contact(email="lan@example.vn")
    session.add(contact)
    session.flush()
    rows = [
        Message(
            step_key=f"w{i}",
            contact_id=contact.id,
            channel="email",
            purpose="marketing",
            template="t/x",
            status="sending",
            attempts=1,
            fallback=[],
            rendered={},
            links={},
        )
        for i in range(count)
    ]
    session.add_all(rows)
    session.commit()
    return [m.id for m in rows]


def _sent(message_id: int, contact_id: int) -> BatchResult:
    at = clock.now()
    result = BatchResult()
    result.sent_rows.append(
        {
            "mid": message_id,
            "provider": "smtp",
            "provider_message_id": f"p{message_id}",
            "segments": None,
            "sent_at": at,
            "updated_at": at,
            "error": None,
        }
    )
    result.sent_events.append(
        {
            "source": "internal",
            "source_event_id": f"message.sent:{message_id}",
            "type": "message.sent",
            "contact_id": contact_id,
            "occurred_at": at,
            "received_at": at,
            "payload": {"properties": {"message_id": message_id}},
        }
    )
    return result


def test_submissions_waiting_together_share_one_commit(session: Session) -> None:
    ids = _sending(session, 5)
    contact_id = session.scalars(select(Contact.id)).one()
    bind = session.get_bind()
    assert isinstance(bind, Engine)
    writer = GroupWriter(bind, start=False)
    futures = []
    threads = [
        threading.Thread(target=lambda i=i: futures.append(writer.submit(_sent(i, contact_id))))
        for i in ids
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not any(f.done() for f in futures)  # nothing is durable before the commit
    assert writer.write_available() == 5
    assert writer.commits == 1 and all(f.done() and f.exception() is None for f in futures)
    session.expire_all()
    assert {m.status for m in session.scalars(select(Message))} == {"sent"}
    assert len(session.scalars(select(Event).where(Event.type == "message.sent")).all()) == 5
    assert writer.write_available(block=False) == 0


def test_a_failing_submission_fails_alone(session: Session) -> None:
    [good] = _sending(session, 1)
    contact_id = session.scalars(select(Contact.id)).one()
    bind = session.get_bind()
    assert isinstance(bind, Engine)
    writer = GroupWriter(bind, start=False)
    ok = writer.submit(_sent(good, contact_id))
    bad_result = _sent(good, contact_id)
    bad_result.sent_events[0].update(type=None, source_event_id="other")  # NOT NULL
    bad = writer.submit(bad_result)
    writer.write_available()
    assert ok.exception() is None and bad.exception() is not None
    session.expire_all()
    assert session.scalars(select(Message.status)).one() == "sent"
