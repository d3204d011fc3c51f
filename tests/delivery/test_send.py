"""Claim, provider outcomes, fallback and retries (deliver_batch, no broker)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.config import Settings
from automation.core.db import session_factory
from automation.core.models import Event, Message
from automation.delivery.claim import claim, claim_rows
from automation.delivery.send import deliver, deliver_batch
from channels.base import Channel, OutboundMessage, SendResult
from channels.filetransport import FileTransport
from tests.delivery.helpers import Loopback, consent, contact, message

NOON = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)


def _order_message(session: Session, c: object, **kw: object) -> Message:
    from automation.core.models import Enrollment, Sequence, SequenceVersion

    seq = Sequence(key=f"orders{kw.get('step', '')}", status="active")
    session.add(seq)
    session.flush()
    ver = SequenceVersion(sequence_id=seq.id, version=1, definition={}, definition_hash="x")
    session.add(ver)
    session.flush()
    ev = Event(source="shopify", source_event_id=f"o-{seq.id}", type="order.shipped",
               contact_id=c.id, occurred_at=NOON,  # type: ignore[attr-defined]
               payload={"properties": {"order_id": "5001", "order_number": "#1001",
                                       "total": 1250000, "carrier": "GHN"}})
    session.add(ev)
    session.flush()
    enr = Enrollment(sequence_id=seq.id, version_id=ver.id, contact_id=c.id,  # type: ignore[attr-defined]
                     trigger_event_id=ev.id, context={})
    session.add(enr)
    session.flush()
    return message(session, c, "zalo_zns", "t/order", purpose="transactional",  # type: ignore[arg-type]
                   enrollment_id=enr.id, **kw)


def test_zns_send_with_order_context_and_event(
    session: Session, dsettings: Settings, zns_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    c = contact(session)
    m = _order_message(session, c)
    session.commit()
    assert deliver_batch(session, [m.id]).sent == [m.id]
    body = zns_server.hits[0].body
    assert body["phone"] == "84912340001" and body["template_id"] == "000002"
    assert body["template_data"] == {
        "customer_name": "Lan", "order_code": "#1001", "total": "1.250.000 ₫",
    }
    assert zns_server.hits[0].headers["access_token"] == "test-token"
    session.refresh(m)
    assert m.status == "sent" and m.provider_message_id == f"zns-{m.id}"
    [event] = session.scalars(select(Event).where(Event.type == "message.sent")).all()
    assert (event.source, event.source_event_id) == ("internal", f"message.sent:{m.id}")
    assert (event.contact_id, event.occurred_at, event.received_at) == (c.id, NOON, NOON)
    assert event.payload == {  # the same on PostgreSQL (built in SQL) and SQLite
        "properties": {
            "message_id": m.id, "channel": "zalo_zns", "template": "t/order",
            "step_key": m.step_key, "enrollment_id": m.enrollment_id, "purpose": "transactional",
            "provider": "zalo_zns", "provider_message_id": f"zns-{m.id}",
        }
    }


def test_zns_template_id_override(
    session: Session, dsettings: Settings, zns_server: Loopback, frozen_clock: clock.FrozenClock,
    monkeypatch: object,
) -> None:
    from automation.core.config import get_settings

    monkeypatch.setenv("ZNS_TEMPLATE_IDS", '{"t/order": "231456"}')  # type: ignore[attr-defined]
    get_settings.cache_clear()
    frozen_clock.set(NOON)
    m = _order_message(session, contact(session))
    session.commit()
    deliver_batch(session, [m.id])
    assert zns_server.hits[0].body["template_id"] == "231456"


def test_permanent_failure_creates_and_sends_fallback(
    session: Session, dsettings: Settings, zns_server: Loopback, esms_server: Loopback,
    frozen_clock: clock.FrozenClock,
) -> None:
    frozen_clock.set(NOON)
    c = contact(session)
    m = _order_message(session, c, fallback=["sms"])
    session.commit()
    zns_server.scripted.append((200, {"error": -118, "message": "Zalo account not existed"}))
    result = deliver_batch(session, [m.id])
    assert result.failed == [m.id] and len(result.fallbacks) == 1
    session.refresh(m)
    fb = session.get(Message, result.fallbacks[0])
    assert fb is not None and fb.channel == "sms" and fb.status == "queued"
    assert fb.step_key == "s1#fallback:sms" and fb.fallback_from_id == m.id
    assert m.status == "failed" and "-118" in (m.error or "")
    assert m.rendered["fallback"] == {"channel": "sms", "message_id": fb.id}
    assert deliver_batch(session, [fb.id]).sent == [fb.id]
    assert esms_server.hits[0].body["Content"] == "Don #1001 da duoc giao cho GHN"


def test_transient_failure_requeues_with_backoff_then_succeeds(
    session: Session, dsettings: Settings, zns_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    m = _order_message(session, contact(session))
    session.commit()
    zns_server.scripted.append((200, {"error": -100, "message": "unknown"}))
    result = deliver_batch(session, [m.id])
    assert result.retry == [m.id] and result.retry_delay_ms == 1000
    session.refresh(m)
    assert m.status == "queued" and m.attempts == 1 and "-100" in (m.error or "")
    assert m.not_before == NOON + timedelta(seconds=1)
    assert deliver_batch(session, [m.id]).sent == []  # backoff not over
    frozen_clock.advance(timedelta(seconds=2))
    assert deliver_batch(session, [m.id]).sent == [m.id]
    session.refresh(m)
    assert m.attempts == 2 and m.error is None and len(zns_server.hits) == 2


def test_gives_up_after_max_attempts(
    session: Session, dsettings: Settings, zns_server: Loopback, frozen_clock: clock.FrozenClock,
    monkeypatch: object,
) -> None:
    from automation.core.config import get_settings

    monkeypatch.setenv("DELIVERY_MAX_ATTEMPTS", "2")  # type: ignore[attr-defined]
    get_settings.cache_clear()
    frozen_clock.set(NOON)
    m = _order_message(session, contact(session))
    session.commit()
    zns_server.scripted.extend([(200, {"error": -100})] * 2)
    assert deliver_batch(session, [m.id]).retry == [m.id]
    frozen_clock.advance(timedelta(minutes=1))
    assert deliver_batch(session, [m.id]).dead == [m.id]
    session.refresh(m)
    assert m.status == "failed" and m.error is not None and m.error.startswith("gave up after 2")


def test_claim_returns_the_rows_as_claimed(session: Session, dsettings: Settings) -> None:
    """The claim's UPDATE returns the rows, refreshed in the session that already holds them."""
    m = message(session, contact(session), not_before=NOON + timedelta(days=3650))
    due = message(session, contact(session, 2), step="s2")
    session.commit()
    assert due.status == "queued"
    assert claim_rows(session, [m.id, due.id, due.id + 1000]) == [due]
    assert (due.status, due.attempts) == ("sending", 1)
    assert claim_rows(session, [due.id]) == []


def test_claim_is_exclusive(session: Session, dsettings: Settings) -> None:
    m = message(session, contact(session))
    session.commit()
    assert claim(session, m.id) is True
    assert claim(session, m.id) is False
    session.refresh(m)
    assert m.status == "sending" and m.attempts == 1


def test_double_delivery_sends_once(
    session: Session, dsettings: Settings, tmp_path: object, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    c = contact(session)
    consent(session, c, "sms")
    m = message(session, c, "sms")
    session.commit()
    out = tmp_path / "double.jsonl"  # type: ignore[operator]
    adapter = FileTransport(out, name="sms")
    barrier = threading.Barrier(4)
    results: list[int] = []

    def worker() -> None:
        s = session_factory(dsettings)()
        try:
            barrier.wait()
            results.extend(deliver(s, m.id, adapter).sent)
        finally:
            s.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [m.id]
    assert len(out.read_text().splitlines()) == 1


def test_outcomes_are_committed_while_other_calls_are_still_in_flight(
    session: Session, dsettings: Settings, frozen_clock: clock.FrozenClock
) -> None:
    """Group commit keeps the at-most-once window: an answered call's "sent" is written
    within a few milliseconds, not held back until the batch's slowest call returns."""
    frozen_clock.set(NOON)
    people = [contact(session, n) for n in (1, 2, 3)]
    for person in people:
        consent(session, person, "sms")
    rows = [message(session, person, "sms") for person in people]
    session.commit()
    fast, slow = [m.id for m in rows[:2]], rows[2].id
    seen: dict[int, str] = {}

    def statuses() -> dict[int, str]:
        other = session_factory(dsettings)()
        try:
            found = other.execute(select(Message.id, Message.status).where(Message.id.in_(fast)))
            return {mid: status for mid, status in found}
        finally:
            other.close()

    class SlowLast(Channel):
        name = "sms"

        def send(self, msg: OutboundMessage) -> SendResult:
            if msg.id == slow:  # in flight until the answered rows are committed (or 5 s)
                deadline = time.monotonic() + 5
                while set(statuses().values()) != {"sent"} and time.monotonic() < deadline:
                    time.sleep(0.01)
                seen.update(statuses())
            return SendResult(f"p{msg.id}")

    result = deliver_batch(session, [m.id for m in rows], adapters=lambda c: (SlowLast(), "test"))

    assert sorted(result.sent) == sorted([*fast, slow])
    assert seen == {mid: "sent" for mid in fast}


def test_zns_calls_run_concurrently_on_the_event_loop_without_a_thread_each(
    session: Session, dsettings: Settings, zns_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    """The default ZNS adapter sends on the process's event loop: DELIVERY_CONCURRENCY (8)
    slow calls are in flight together, and no send-pool thread is started for them."""
    frozen_clock.set(NOON)
    people = [contact(session, n) for n in range(1, 9)]
    for person in people:
        consent(session, person, "zalo")
    rows = [message(session, person, "zalo_zns") for person in people]
    session.commit()
    answer, lock = zns_server.answer, threading.Lock()
    in_flight, most = [0], [0]

    def slow(body: dict[str, Any]) -> Any:  # counts the calls the server holds at once
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.4)
        with lock:
            in_flight[0] -= 1
        return answer(body)

    zns_server.answer = slow
    before = {t.name for t in threading.enumerate()}

    result = deliver_batch(session, [m.id for m in rows])

    assert sorted(result.sent) == sorted(m.id for m in rows)
    assert most[0] == len(rows)  # all in flight together, not one after another
    started = {t.name for t in threading.enumerate()} - before
    assert not any(name.startswith("send_") for name in started)
    assert sorted(h.body["tracking_id"] for h in zns_server.hits) == sorted(
        str(m.id) for m in rows
    )
