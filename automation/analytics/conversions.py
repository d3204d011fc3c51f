"""Conversions: credit each order to the message that led to it, and goals to enrollments.

Attribution (per order.created): the last message of a sequence the contact clicked
within that sequence's click window, failing that the last one opened or delivered
within its view window. Goals (any event): every enrollment of the contact that entered
before the event and within its goal window counts once as converted, held out or not.
A cancel or a refund takes the revenue back (a partial refund lowers it).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from automation.analytics.definition import MAX_WINDOW, NOT_GOALS, Analytics
from automation.contacts.orders import stored_order
from automation.core import events as ev
from automation.core.clock import now
from automation.core.db import dialect_insert
from automation.core.models import Enrollment, Event, Message, MessageEvent, Order
from automation.core.models_analytics import Attribution, GoalConversion
from automation.core.vocabulary import ENGAGEMENT, Status
from automation.sequences.schema import filters_match
from automation.sequences.store import load_version, may_react

CLICKS = frozenset(ENGAGEMENT["clicked"])
VIEWS = frozenset((*ENGAGEMENT["opened"], Status.DELIVERED))
REVERSING = (ev.ORDER_CANCELLED, ev.ORDER_REFUNDED)
NOT_COUNTED = ("cancelled", "refunded")


def record_conversions(session: Session, event: Event) -> None:
    """process_event handler: attribution on orders, revenue back on cancel/refund, goals."""
    record_conversions_of(session, [event])


def record_conversions_of(session: Session, events: list[Event]) -> None:
    """record_conversions for events of distinct contacts (a round of an event batch): the
    messages they may be attributed to and the enrollments whose goals they may reach
    are read in one query each."""
    wanted: list[tuple[Event, bool]] = []
    for event in events:
        if event.contact_id is None or event.type.startswith(NOT_GOALS):
            continue
        goals = may_react(session, "goals", event.type)
        if event.type != ev.ORDER_CREATED and event.type not in REVERSING and not goals:
            continue  # no attribution, no revenue to follow, no sequence counts it as a goal
        wanted.append((event, goals))
    ordered = [e for e, _ in wanted if e.type == ev.ORDER_CREATED]
    touches = _touches(session, ordered) if ordered else {}
    goal_events = [e for e, goals in wanted if goals]
    candidates = _goal_candidates(session, goal_events) if goal_events else {}
    for event, goals in wanted:
        contact_id = event.contact_id or 0
        order = event_order(session, event)
        if event.type == ev.ORDER_CREATED and order is not None:
            attribute_order(session, event, order, touches.get(contact_id, []))
        if event.type in REVERSING and order is not None:
            sync_revenue(session, order)
        if goals:
            credit_goals(session, event, order, candidates.get(contact_id, []))


def _window(events: list[Event]) -> tuple[datetime, datetime]:
    """From MAX_WINDOW before the earliest event to the latest one."""
    times = [e.occurred_at for e in events]
    return min(times) - MAX_WINDOW, max(times)


def _touches(session: Session, events: list[Event]) -> dict[int, list[Any]]:
    """contact -> its clicked / viewed messages in the events' windows, newest first:
    (type, occurred_at, message, version id, sequence id)."""
    since, until = _window(events)
    rows = session.execute(
        select(Message.contact_id, MessageEvent.type, MessageEvent.occurred_at, Message,
               Enrollment.version_id, Enrollment.sequence_id)
        .join(Message, Message.id == MessageEvent.message_id)
        .join(Enrollment, Enrollment.id == Message.enrollment_id)
        .where(
            Message.contact_id.in_(sorted({e.contact_id for e in events if e.contact_id})),
            MessageEvent.type.in_(CLICKS | VIEWS),
            MessageEvent.occurred_at >= since,
            MessageEvent.occurred_at <= until,
        )
        .order_by(MessageEvent.occurred_at.desc(), MessageEvent.id.desc())
    ).all()  # fmt: skip
    found: dict[int, list[Any]] = {}
    for contact_id, *row in rows:
        found.setdefault(contact_id, []).append(tuple(row))
    return found


def _goal_candidates(session: Session, events: list[Event]) -> dict[int, list[Enrollment]]:
    """contact -> its enrollments entered in the events' windows and not converted yet."""
    since, until = _window(events)
    contacts = sorted({e.contact_id for e in events if e.contact_id is not None})
    converted = select(GoalConversion.enrollment_id).where(GoalConversion.contact_id.in_(contacts))
    found: dict[int, list[Enrollment]] = {}
    for enrollment in session.scalars(
        select(Enrollment)
        .where(
            Enrollment.contact_id.in_(contacts),
            Enrollment.entered_at >= since,
            Enrollment.entered_at <= until,
            Enrollment.id.not_in(converted),
        )
        .order_by(Enrollment.id)
    ):
        found.setdefault(enrollment.contact_id, []).append(enrollment)
    return found


def event_order(session: Session, event: Event) -> Order | None:
    """The Order row an order event is about (stored by the orders handler before us)."""
    props = (event.payload or {}).get("properties") or {}
    order_id = props.get("order_id") if isinstance(props, dict) else None
    if not order_id or not event.type.startswith("order."):
        return None
    return stored_order(session, event.source, str(order_id))


def _analytics(session: Session, version_id: int, cache: dict[int, Analytics]) -> Analytics:
    if version_id not in cache:
        cache[version_id] = load_version(session, version_id).analytics
    return cache[version_id]


def attribute_order(
    session: Session, event: Event, order: Order, touches: list[Any] | None = None
) -> Attribution | None:
    """Store the order's attribution to the last clicked (else viewed) message, if any.

    ``touches``: _touches already read for the contact (a wider window is fine)."""
    at = event.occurred_at
    if touches is None:
        touches = _touches(session, [event]).get(event.contact_id or 0, [])
    rows = [row for row in touches if at - MAX_WINDOW <= row[1] <= at]
    cache: dict[int, Analytics] = {}
    best: tuple[str, Any] | None = None
    for kind, types, window in (("click", CLICKS, "click_window"), ("view", VIEWS, "view_window")):
        for type_, occurred, message, version_id, sequence_id in rows:
            settings = _analytics(session, version_id, cache)
            if type_ in types and occurred >= at - getattr(settings, window):
                best = (kind, (message, version_id, sequence_id))
                break
        if best is not None:
            break
    if best is None:
        return None
    kind, (message, version_id, sequence_id) = best
    values = {
        "order_id": order.id,
        "event_id": event.id,
        "message_id": message.id,
        "enrollment_id": message.enrollment_id,
        "sequence_id": sequence_id,
        "version_id": version_id,
        "contact_id": message.contact_id,
        "step_key": message.step_key.split("#", 1)[0],
        "channel": message.channel,
        "model": kind,
        "revenue": order.total,
        "attributed_at": at,
    }
    insert = dialect_insert(session)
    session.execute(insert(Attribution).values(**values).on_conflict_do_nothing())
    return session.scalar(select(Attribution).where(Attribution.order_id == order.id))


def sync_revenue(session: Session, order: Order) -> None:
    """Follow the order: a cancel or full refund takes the revenue back, a partial lowers it."""
    gone = order.status in NOT_COUNTED
    values: dict[str, Any] = {"revenue": order.total}
    if gone:
        values["reversed_at"] = now()
    for model in (Attribution, GoalConversion):
        session.execute(
            update(model)
            .where(model.order_id == order.id, model.reversed_at.is_(None))
            .values(**values)
        )


def credit_goals(
    session: Session, event: Event, order: Order | None, candidates: list[Enrollment] | None = None
) -> int:
    """Mark the contact's enrollments whose goal this event reaches; returns how many.

    ``candidates``: _goal_candidates already read for the contact (a wider window is fine)."""
    at: datetime = event.occurred_at
    if candidates is None:
        candidates = _goal_candidates(session, [event]).get(event.contact_id or 0, [])
    enrollments = [e for e in candidates if at - MAX_WINDOW <= e.entered_at <= at]
    cache: dict[int, Analytics] = {}
    props = (event.payload or {}).get("properties") or {}
    insert = dialect_insert(session)
    count = 0
    for enrollment in enrollments:
        if enrollment.trigger_event_id == event.id:
            continue  # the event that started the enrollment is not its outcome
        goal = _analytics(session, enrollment.version_id, cache).goal
        if goal is None or goal.event != event.type or at - enrollment.entered_at > goal.within:
            continue
        if not filters_match(goal.where, props if isinstance(props, dict) else {}):
            continue
        session.execute(
            insert(GoalConversion)
            .values(
                enrollment_id=enrollment.id,
                sequence_id=enrollment.sequence_id,
                contact_id=enrollment.contact_id,
                event_id=event.id,
                order_id=order.id if order is not None else None,
                revenue=order.total if order is not None else 0,
                holdout=bool((enrollment.context or {}).get("holdout")),
                converted_at=at,
            )
            .on_conflict_do_nothing()
        )
        count += 1
    return count
