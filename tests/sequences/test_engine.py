"""The enrollment engine end to end on both backends, with the clock moved forward."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from automation.core.clock import FrozenClock
from automation.core.config import Settings
from automation.core.db import session_factory
from automation.core.models import Contact, Enrollment, Segment, SegmentMembership
from automation.sequences.engine import advance_enrollment, choose_branch, split_bucket
from automation.sequences.schema import SplitStep
from automation.sequences.store import load_version, pause_sequence, resume_sequence
from automation.sequences.triggers import enroll_contact
from tests.sequences.helpers import (
    apply_yaml,
    emit,
    engage,
    enrollments,
    make_contact,
    messages,
)

Scheduler = Callable[[datetime], dict[str, int]]

CART = """
sequence: cart_recovery
purpose: marketing
trigger: {event: cart.abandoned}
reentry: after 7d
exit_on: [{event: order.created, as: converted}]
steps:
  - wait: 1h
  - send: {channel: zalo_zns, template: cart_recovery/reminder, fallback: [sms, email]}
  - wait: 23h
  - if: {clicked: previous}
    then: [{exit: engaged}]
  - send: {channel: email, template: cart_recovery/last_call}
"""


def _at(clock: FrozenClock, scheduler: Scheduler, delta: timedelta) -> datetime:
    when = clock.now() + delta
    clock.set(when)
    scheduler(when)
    return when


def test_trigger_and_waits(
    session: Session, frozen_clock: FrozenClock, scheduler: Scheduler
) -> None:
    apply_yaml(session, CART)
    contact = make_contact(session)
    t0 = frozen_clock.now()
    emit(session, "cart.abandoned", contact, {"cart_id": "c1", "total": 250000})
    [enr] = enrollments(session)
    assert (enr.state, enr.cursor, enr.next_run_at) == ("waiting", "1", t0 + timedelta(hours=1))
    assert messages(session) == []

    _at(frozen_clock, scheduler, timedelta(minutes=59))
    assert messages(session) == []
    _at(frozen_clock, scheduler, timedelta(minutes=1))
    [first] = messages(session)
    assert (first.channel, first.template, first.status, first.step_key) == (
        "zalo_zns",
        "cart_recovery/reminder",
        "queued",
        "1",
    )
    assert first.fallback == ["sms", "email"] and first.purpose == "marketing"
    [enr] = enrollments(session)
    assert enr.state == "waiting" and enr.next_run_at == t0 + timedelta(hours=24)

    _at(frozen_clock, scheduler, timedelta(hours=23))
    assert [m.template for m in messages(session)] == [
        "cart_recovery/reminder",
        "cart_recovery/last_call",
    ]
    [enr] = enrollments(session)
    assert enr.state == "done" and enr.finished_at is not None and enr.next_run_at is None


def test_one_pass_far_ahead_does_everything_due(
    session: Session, frozen_clock: FrozenClock, scheduler: Scheduler
) -> None:
    apply_yaml(session, CART)
    contact = make_contact(session)
    emit(session, "cart.abandoned", contact, {"cart_id": "c1"})
    _at(frozen_clock, scheduler, timedelta(hours=25))
    assert len(messages(session)) == 2
    assert enrollments(session)[0].state == "done"


def test_exit_on_purchase_mid_wait(
    session: Session, frozen_clock: FrozenClock, scheduler: Scheduler
) -> None:
    apply_yaml(session, CART)
    contact = make_contact(session)
    emit(session, "cart.abandoned", contact, {"cart_id": "c1"})
    _at(frozen_clock, scheduler, timedelta(hours=2))
    assert len(messages(session)) == 1
    emit(session, "order.created", contact, {"order_id": "o1", "total": 250000})
    [enr] = enrollments(session)  # exited at once, no scheduler pass needed
    assert (enr.state, enr.exit_reason, enr.next_run_at) == ("exited", "converted", None)
    _at(frozen_clock, scheduler, timedelta(days=3))
    assert len(messages(session)) == 1


def test_clicked_previous_exits_engaged(
    session: Session, frozen_clock: FrozenClock, scheduler: Scheduler
) -> None:
    apply_yaml(session, CART)
    clicker, other = make_contact(session), make_contact(session)
    emit(session, "cart.abandoned", clicker, {"cart_id": "c1"})
    emit(session, "cart.abandoned", other, {"cart_id": "c2"})
    _at(frozen_clock, scheduler, timedelta(hours=1))
    engage(session, messages(session, clicker)[0], "clicked")
    engage(session, messages(session, other)[0], "opened")  # opened is not clicked
    _at(frozen_clock, scheduler, timedelta(hours=23))
    assert len(messages(session, clicker)) == 1
    assert enrollments(session, clicker)[0].exit_reason == "engaged"
    assert len(messages(session, other)) == 2
    assert enrollments(session, other)[0].state == "done"


def test_opened_by_step_id_follows_fallback_messages(
    session: Session, frozen_clock: FrozenClock, scheduler: Scheduler
) -> None:
    apply_yaml(
        session,
        """
        sequence: hello
        trigger: {event: lead.captured}
        steps:
          - {id: welcome, send: {channel: zalo_zns, template: hello/welcome, fallback: [email]}}
          - wait: 1d
          - if: {opened: welcome}
            then: [{send: {channel: email, template: hello/thanks}}]
            else: [{send: {channel: sms, template: hello/nudge}}]
        """,
    )
    contact = make_contact(session)
    emit(session, "lead.captured", contact)
    [original] = messages(session)
    # delivery fell back to email; the email was opened
    from automation.core.models import Message

    fallback = Message(
        enrollment_id=original.enrollment_id,
        step_key="0:fallback:email",
        contact_id=contact,
        channel="email",
        template=original.template,
        fallback_from_id=original.id,
    )
    session.add(fallback)
    session.commit()
    engage(session, fallback, "opened")
    _at(frozen_clock, scheduler, timedelta(days=1))
    assert messages(session)[-1].template == "hello/thanks"


def test_reentry_rules(session: Session, frozen_clock: FrozenClock) -> None:
    for mode in ("never", "always", "after 7d"):
        apply_yaml(
            session,
            f"""
            sequence: re_{mode.replace(" ", "_")}
            trigger: {{event: lead.captured}}
            reentry: {mode}
            steps: [{{send: {{channel: email, template: re/hi}}}}]
            """,
        )
    contact = make_contact(session)
    emit(session, "lead.captured", contact)
    frozen_clock.advance(timedelta(days=1))
    emit(session, "lead.captured", contact)
    frozen_clock.advance(timedelta(days=7))
    emit(session, "lead.captured", contact)
    counts: dict[str, int] = {}
    for enr in enrollments(session):
        key = {e.id: e for e in enrollments(session)}[enr.id].sequence_id
        counts[str(key)] = counts.get(str(key), 0) + 1
    from automation.core.models import Sequence

    by_key = {s.id: s.key for s in session.query(Sequence)}
    named = {by_key[int(k)]: v for k, v in counts.items()}
    assert named == {"re_never": 1, "re_always": 3, "re_after_7d": 2}
    assert len(messages(session)) == 6


def test_versioning_running_enrollment_stays_on_its_version(
    session: Session, frozen_clock: FrozenClock, scheduler: Scheduler
) -> None:
    text = """
    sequence: welcome
    trigger: {event: lead.captured}
    reentry: always
    steps:
      - wait: 1d
      - send: {channel: email, template: welcome/TEMPLATE}
    """
    first = apply_yaml(session, text.replace("TEMPLATE", "one"))
    assert first.status == "created" and first.version.version == 1
    assert apply_yaml(session, text.replace("TEMPLATE", "one")).status == "unchanged"
    old_contact, new_contact = make_contact(session), make_contact(session)
    emit(session, "lead.captured", old_contact)
    second = apply_yaml(session, text.replace("TEMPLATE", "two"))
    assert second.status == "changed" and second.version.version == 2
    assert second.sequence.current_version_id == second.version.id
    emit(session, "lead.captured", new_contact)
    old_enr, new_enr = enrollments(session)
    assert old_enr.version_id == first.version.id and new_enr.version_id == second.version.id
    _at(frozen_clock, scheduler, timedelta(days=1))
    assert messages(session, old_contact)[0].template == "welcome/one"
    assert messages(session, new_contact)[0].template == "welcome/two"
    assert load_version(session, first.version.id).definition_hash == first.version.definition_hash


WAIT_UNTIL = """
sequence: wait_for_order
trigger: {event: lead.captured}
steps:
  - send: {channel: email, template: lead/welcome}
  - wait_until: {event: order.created, timeout: 3d, where: [{property: total, gte: 100000}]}
    on_event: [{send: {channel: email, template: lead/thanks}}]
    on_timeout: [{send: {channel: sms, template: lead/nudge}}]
  - send: {channel: email, template: lead/after}
"""


def test_wait_until_event_path_resumes_at_once(
    session: Session, frozen_clock: FrozenClock, scheduler: Scheduler
) -> None:
    apply_yaml(session, WAIT_UNTIL)
    contact = make_contact(session)
    emit(session, "lead.captured", contact)
    [enr] = enrollments(session)
    assert enr.state == "waiting" and enr.waiting_for == "order.created"
    frozen_clock.advance(timedelta(days=1))
    emit(session, "order.created", contact, {"total": 50000})  # filtered out: keeps waiting
    [enr] = enrollments(session)
    assert enr.state == "waiting"
    assert enr.next_run_at == frozen_clock.now() + timedelta(days=2)
    emit(session, "order.created", contact, {"total": 150000})
    assert [m.template for m in messages(session)] == ["lead/welcome", "lead/thanks", "lead/after"]
    assert enrollments(session)[0].state == "done"


def test_wait_until_timeout_path(
    session: Session, frozen_clock: FrozenClock, scheduler: Scheduler
) -> None:
    apply_yaml(session, WAIT_UNTIL)
    contact = make_contact(session)
    emit(session, "lead.captured", contact)
    _at(frozen_clock, scheduler, timedelta(days=2, hours=23))
    assert len(messages(session)) == 1
    _at(frozen_clock, scheduler, timedelta(hours=1))
    assert [m.template for m in messages(session)] == ["lead/welcome", "lead/nudge", "lead/after"]
    # an order after the timeout changes nothing
    emit(session, "order.created", contact, {"total": 150000})
    assert len(messages(session)) == 3


def test_split_is_stable_per_contact(session: Session, frozen_clock: FrozenClock) -> None:
    result = apply_yaml(
        session,
        """
        sequence: ab_test
        trigger: {event: lead.captured}
        reentry: always
        steps:
          - split:
              - {name: a, percent: 50, steps: [{send: {channel: email, template: ab/a}}]}
              - {name: b, percent: 50, steps: [{send: {channel: email, template: ab/b}}]}
        """,
    )
    contacts = [make_contact(session) for _ in range(16)]
    for index, contact in enumerate(contacts):
        emit(session, "lead.captured", contact)
        if index < 4:
            emit(session, "lead.captured", contact)  # re-entry: same variant again
    step = load_version(session, result.version.id).steps[0]
    assert isinstance(step, SplitStep)
    seen = set()
    for contact in contacts:
        templates = {m.template for m in messages(session, contact)}
        expected = f"ab/{choose_branch(step, split_bucket('ab_test', contact, '0')).name}"
        assert templates == {expected}
        seen.add(expected)
    assert seen == {"ab/a", "ab/b"}
    variants = {e.context["variants"]["0"] for e in enrollments(session)}
    assert variants == {"a", "b"}


def test_update_step_sets_attributes_and_tags(session: Session, frozen_clock: FrozenClock) -> None:
    apply_yaml(
        session,
        """
        sequence: tagger
        trigger: {event: order.created, where: [{property: total, gte: 1000000}]}
        steps:
          - update: {set: {tier: gold, points: 10}, add_tags: [vip, buyer], remove_tag: lead}
        """,
    )
    contact = make_contact(session, tags=["lead", "newsletter"], attributes={"city": "Hà Nội"})
    emit(session, "order.created", contact, {"total": 500000})
    assert enrollments(session) == []  # filtered by where
    emit(session, "order.created", contact, {"total": 1500000})
    session.expire_all()
    row = session.get(Contact, contact)
    assert row is not None
    assert row.attributes == {"city": "Hà Nội", "tier": "gold", "points": 10}
    assert row.tags == ["newsletter", "vip", "buyer"]
    assert enrollments(session)[0].state == "done"


def test_segment_trigger_and_audience(session: Session, frozen_clock: FrozenClock) -> None:
    apply_yaml(
        session,
        """
        sequence: nurture
        trigger: {segment: leads_not_buying_3d}
        audience: reachable
        steps: [{send: {channel: email, template: nurture/one}}]
        """,
    )
    reachable = Segment(key="reachable", name="Reachable", definition_hash="x")
    session.add(reachable)
    inside, outside = make_contact(session), make_contact(session)
    session.add(SegmentMembership(segment_id=reachable.id, contact_id=inside))
    session.commit()
    for contact in (inside, outside):
        emit(session, "segment.entered", contact, {"segment": "leads_not_buying_3d"})
        emit(session, "segment.entered", contact, {"segment": "vip"})
    assert [e.contact_id for e in enrollments(session)] == [inside]


def test_exit_step_and_pause_resume(
    session: Session, frozen_clock: FrozenClock, scheduler: Scheduler
) -> None:
    apply_yaml(
        session,
        """
        sequence: pausable
        trigger: {event: lead.captured}
        steps:
          - wait: 1h
          - send: {channel: email, template: p/one}
          - exit: finished_early
          - send: {channel: email, template: p/never}
        """,
    )
    first, second = make_contact(session), make_contact(session)
    emit(session, "lead.captured", first)
    pause_sequence(session, "pausable")
    session.commit()
    emit(session, "lead.captured", second)  # paused: no new enrollment
    _at(frozen_clock, scheduler, timedelta(hours=2))
    assert messages(session) == []  # running enrollment holds
    resume_sequence(session, "pausable")
    session.commit()
    _at(frozen_clock, scheduler, timedelta(minutes=1))
    assert [m.template for m in messages(session)] == ["p/one"]
    [enr] = enrollments(session)
    assert (enr.contact_id, enr.state, enr.exit_reason) == (first, "exited", "finished_early")
    assert enroll_contact(session, "pausable", second, frozen_clock.now()) is not None


def test_concurrent_advance_sends_one_message_per_step(
    settings: Settings, session: Session, frozen_clock: FrozenClock
) -> None:
    apply_yaml(
        session,
        """
        sequence: racer
        trigger: {event: lead.captured}
        steps:
          - wait: 1h
          - send: {channel: email, template: r/one}
          - send: {channel: sms, template: r/two}
        """,
    )
    contact = make_contact(session)
    emit(session, "lead.captured", contact)
    [enr] = enrollments(session)
    due = frozen_clock.now() + timedelta(hours=1)
    factory = session_factory(settings)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def worker() -> None:
        db = factory()
        try:
            barrier.wait()
            advance_enrollment(db, enr.id, due)
            db.commit()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(m.step_key for m in messages(session)) == ["1", "2"]
    # running it again later changes nothing
    advance_enrollment(session, enr.id, due + timedelta(days=1))
    session.commit()
    assert len(messages(session)) == 2
    assert session.get(Enrollment, enr.id, populate_existing=True).state == "done"  # type: ignore[union-attr]


def test_if_on_segment_rule(
    session: Session, frozen_clock: FrozenClock, scheduler: Scheduler
) -> None:
    apply_yaml(
        session,
        """
        sequence: by_city
        trigger: {event: lead.captured}
        steps:
          - if: {all: [{field: attributes.city, eq: Hà Nội}, {field: orders_count, lt: 1}]}
            then: [{send: {channel: email, template: city/hanoi}}]
            else: [{send: {channel: email, template: city/other}}]
          - if: {clicked: email}
            then: [{exit: clicked_before}]
          - send: {channel: sms, template: city/last}
        """,
    )
    hanoi = make_contact(session, attributes={"city": "Hà Nội"})
    saigon = make_contact(session, attributes={"city": "HCM"})
    emit(session, "lead.captured", hanoi)
    emit(session, "lead.captured", saigon)
    assert [m.template for m in messages(session, hanoi)] == ["city/hanoi", "city/last"]
    assert [m.template for m in messages(session, saigon)] == ["city/other", "city/last"]


def test_order_events_correlate_with_their_own_order(
    session: Session, frozen_clock: FrozenClock, scheduler: Scheduler
) -> None:
    apply_yaml(
        session,
        """
        sequence: order_status
        purpose: transactional
        trigger: {event: order.created}
        reentry: always
        exit_on: [{event: order.cancelled, as: cancelled}]
        steps:
          - wait_until: {event: order.paid, timeout: 7d}
            on_event: [{send: {channel: sms, template: order_status/paid}}]
          - send: {channel: email, template: order_status/after}
        """,
    )
    contact = make_contact(session)
    emit(session, "order.created", contact, {"order_id": "A", "total": 100000})
    emit(session, "order.created", contact, {"order_id": "B", "total": 200000})
    emit(session, "order.paid", contact, {"order_id": "A"})
    first, second = enrollments(session)
    assert first.state == "done" and second.state == "waiting"
    assert [m.template for m in messages(session)] == ["order_status/paid", "order_status/after"]
    assert all(m.purpose == "transactional" for m in messages(session))
    emit(session, "order.cancelled", contact, {"order_id": "A"})  # A is done; B unaffected
    assert enrollments(session)[1].state == "waiting"
    emit(session, "order.cancelled", contact, {"order_id": "B"})
    assert enrollments(session)[1].exit_reason == "cancelled"


def test_paid_before_the_wait_started_still_counts(
    session: Session, frozen_clock: FrozenClock
) -> None:
    apply_yaml(
        session,
        """
        sequence: paid_check
        trigger: {event: order.created}
        steps:
          - wait: 1h
          - wait_until: {event: order.paid, timeout: 7d, same: [order_id]}
            on_event: [{exit: paid}]
            on_timeout: [{exit: unpaid}]
        """,
    )
    contact = make_contact(session)
    emit(session, "order.created", contact, {"order_id": "A"})
    frozen_clock.advance(timedelta(minutes=10))
    emit(session, "order.paid", contact, {"order_id": "A"})
    frozen_clock.advance(timedelta(hours=1))
    [enr] = enrollments(session)
    advance_enrollment(session, enr.id, frozen_clock.now())
    session.commit()
    assert enrollments(session)[0].exit_reason == "paid"


def test_late_purchase_webhook_exits(session: Session, frozen_clock: FrozenClock) -> None:
    apply_yaml(session, CART)
    contact = make_contact(session)
    entered = frozen_clock.now()
    emit(session, "cart.abandoned", contact, {"cart_id": "c1"})
    # the shop says the order happened 5 minutes before the enrollment; it arrives now
    emit(
        session,
        "order.created",
        contact,
        {"order_id": "o1"},
        occurred_at=entered - timedelta(minutes=5),
    )
    assert enrollments(session)[0].exit_reason == "converted"
