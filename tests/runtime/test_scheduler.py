"""The scheduler pass: registry, inline events, abandoned carts, racing passes."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core.clock import FrozenClock
from automation.core.config import Settings
from automation.core.db import session_factory
from automation.core.eventlog import record_event
from automation.core.models import Cart, Contact, Enrollment, Event, Message, Order
from automation.runtime.scheduler import run_pass
from automation.runtime.tasks import TASKS, Task
from tests.sequences.helpers import apply_yaml, make_contact

CART = """
sequence: cart_recovery
trigger: {event: cart.abandoned}
reentry: always
exit_on: [{event: order.created, as: converted}]
steps:
  - wait: 1h
  - send: {channel: email, template: cart_recovery/reminder}
"""


def _pass(settings: Settings, now: datetime) -> dict[str, int]:
    return run_pass(session_factory(settings), now)


def _cart(session: Session, contact_id: int | None, updated_at: datetime, ext: str) -> Cart:
    cart = Cart(
        source="shopify",
        external_id=ext,
        contact_id=contact_id,
        total=1250000,
        items=[{"sku": "AO-1", "name": "Áo dài", "quantity": 1, "price": 1250000}],
        recovery_url="https://shop.vn/r/1",
        updated_at=updated_at,
    )
    session.add(cart)
    session.commit()
    return cart


def test_registry_runs_tasks_in_own_transactions(
    settings: Settings, session: Session, frozen_clock: FrozenClock
) -> None:
    def broken(db: Session, now: datetime) -> int:
        db.add(Contact(email="rolled-back@example.vn"))
        db.flush()
        raise RuntimeError("boom")

    def counter(db: Session, now: datetime) -> int:
        db.add(Contact(email="kept@example.vn"))
        return 7

    tasks = (Task("test_broken", broken), Task("test_counter", counter), *TASKS)
    result = run_pass(session_factory(settings), frozen_clock.now(), tasks)
    assert list(result) == ["test_broken", "test_counter", *(t.name for t in TASKS)]
    assert result["test_broken"] == -1 and result["test_counter"] == 7
    for name in ("events", "abandoned_carts", "due_enrollments", "stale_outbox", "time_segments"):
        assert name in result
    emails = set(session.scalars(select(Contact.email)))
    assert emails == {"kept@example.vn"}


def test_pass_processes_stored_events_inline(
    settings: Settings, session: Session, frozen_clock: FrozenClock
) -> None:
    apply_yaml(session, CART)
    contact = make_contact(session)
    event = record_event(session, "cart.abandoned", contact, {"cart_id": "x"}, "lost:1")
    assert event is not None
    session.commit()
    result = _pass(settings, frozen_clock.now())
    assert result["events"] == 1
    session.expire_all()
    assert session.get(Event, event.id).processed_at is not None  # type: ignore[union-attr]
    assert session.scalar(select(func.count()).select_from(Enrollment)) == 1


def test_abandoned_cart_detected_once(
    settings: Settings, session: Session, frozen_clock: FrozenClock
) -> None:
    apply_yaml(session, CART)
    t0 = frozen_clock.now()
    buyer, leaver = make_contact(session), make_contact(session)
    abandoned = _cart(session, leaver, t0, "chk-1")
    bought = _cart(session, buyer, t0, "chk-2")
    _cart(session, None, t0, "chk-anon")  # nobody to message
    session.add(
        Order(
            source="shopify",
            external_id="o-1",
            contact_id=buyer,
            status="paid",
            total=1250000,
            placed_at=t0 + timedelta(minutes=20),
        )
    )
    session.commit()

    frozen_clock.set(t0 + timedelta(minutes=59))
    assert _pass(settings, frozen_clock.now())["abandoned_carts"] == 0
    frozen_clock.set(t0 + timedelta(minutes=60))
    assert _pass(settings, frozen_clock.now())["abandoned_carts"] == 1
    assert _pass(settings, frozen_clock.now())["abandoned_carts"] == 0
    frozen_clock.set(t0 + timedelta(days=2))
    assert _pass(settings, frozen_clock.now())["abandoned_carts"] == 0

    session.expire_all()
    [event] = session.scalars(select(Event).where(Event.type == "cart.abandoned"))
    assert event.contact_id == leaver and event.processed_at is not None
    assert event.source_event_id == f"cart:{abandoned.id}:{t0.isoformat()}"
    props = event.payload["properties"]
    assert props["cart_id"] == "chk-1" and props["total"] == 1250000
    assert props["items"][0]["name"] == "Áo dài"
    assert session.get(Cart, abandoned.id).abandoned_at is not None  # type: ignore[union-attr]
    assert session.get(Cart, bought.id).converted_at is not None  # type: ignore[union-attr]
    # the pass two days later also ran the enrollment's 1h wait
    [message] = session.scalars(select(Message))
    assert (message.contact_id, message.template) == (leaver, "cart_recovery/reminder")


def test_two_schedulers_racing_make_no_duplicates(
    settings: Settings, session: Session, frozen_clock: FrozenClock
) -> None:
    apply_yaml(session, CART)
    t0 = frozen_clock.now()
    contacts = [make_contact(session) for _ in range(12)]
    for index, contact in enumerate(contacts):
        _cart(session, contact, t0, f"race-{index}")
        # some stored events nobody processed yet
        record_event(
            session, "cart.abandoned", contact, {"cart_id": f"lost-{index}"}, f"lost:{index}"
        )
    session.commit()
    when = t0 + timedelta(hours=3)
    first = _race(settings, frozen_clock, when)
    assert sum(r["abandoned_carts"] for r in first) == 12
    assert sum(r["events"] for r in first) == 12
    second = _race(settings, frozen_clock, when + timedelta(hours=1))
    assert sum(r["due_enrollments"] for r in second) == 24
    session.expire_all()
    abandoned = session.scalar(
        select(func.count()).select_from(Event).where(Event.type == "cart.abandoned")
    )
    assert abandoned == 24
    # reentry: always -> exactly one enrollment per processed trigger event
    assert session.scalar(select(func.count()).select_from(Enrollment)) == 24
    assert session.scalar(select(func.count()).select_from(Message)) == 24
    # every enrollment advanced once: its single message, then done
    states = set(session.scalars(select(Enrollment.state)))
    assert states == {"done"}


def _race(settings: Settings, clock: FrozenClock, when: datetime) -> list[dict[str, int]]:
    """Two scheduler passes started at the same instant in two threads."""
    clock.set(when)
    barrier = threading.Barrier(2)
    results: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def scheduler() -> None:
        try:
            barrier.wait()
            results.append(_pass(settings, when))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(results) == 2 and all(-1 not in r.values() for r in results), results
    return results


def test_time_based_segment_entry_enrolls_in_the_pass(
    settings: Settings, session: Session, frozen_clock: FrozenClock
) -> None:
    contact, t0 = _old_leads(session, frozen_clock)
    frozen_clock.set(t0 + timedelta(days=2))
    assert _pass(settings, frozen_clock.now())["time_segments"] == 0
    frozen_clock.set(t0 + timedelta(days=3, minutes=1))
    result = _pass(settings, frozen_clock.now())
    assert result["time_segments"] == 1
    session.expire_all()
    [message] = session.scalars(select(Message))
    assert (message.contact_id, message.template) == (contact, "nurture/one")


def test_a_pass_behind_the_clock_still_enrolls_what_its_refresh_recorded(
    settings: Settings, session: Session, frozen_clock: FrozenClock
) -> None:
    """The refresh stamps its events with the clock; a pass started earlier still takes them."""
    contact, t0 = _old_leads(session, frozen_clock)
    frozen_clock.set(t0 + timedelta(days=3, minutes=1))
    assert _pass(settings, frozen_clock.now() - timedelta(seconds=2))["time_segments"] == 1
    session.expire_all()
    assert [m.contact_id for m in session.scalars(select(Message))] == [contact]


def _old_leads(session: Session, frozen_clock: FrozenClock) -> tuple[int, datetime]:
    """A time-based segment (3-day-old leads), a sequence it triggers, a contact created now."""
    from automation.segments import apply_segments, load_segment_text

    apply_segments(
        session,
        [
            load_segment_text(
                "segment: old_leads\nname: Khách cũ\n"
                "rule: {all: [{field: created_at, more_than_ago: 3d},"
                " {field: orders_count, eq: 0}]}\n",
                "old_leads.yaml",
            )
        ],
    )
    session.commit()
    apply_yaml(
        session,
        """
        sequence: nurture_test
        trigger: {segment: old_leads}
        steps: [{send: {channel: email, template: nurture/one}}]
        """,
    )
    t0 = frozen_clock.now()
    return make_contact(session), t0
