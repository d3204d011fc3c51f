"""React to a contact's event at once: exit_on conditions and wait_until wake-ups."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.models import Enrollment, Event, SequenceVersion
from automation.sequences.engine import (
    RUNNING,
    advance_enrollment,
    event_properties,
    finish,
    lock_enrollments,
    trigger_properties,
)
from automation.sequences.schema import (
    ExitCondition,
    SequenceDefinition,
    correlated,
    filters_match,
)
from automation.sequences.store import may_react, version_definition

log = logging.getLogger(__name__)


def exit_condition_for(
    definition: SequenceDefinition, event: Event, trigger: dict[str, Any] | None
) -> ExitCondition | None:
    """The first exit_on condition that this event satisfies (filters and ``same`` keys)."""
    properties = event_properties(event)
    for condition in definition.exit_on:
        if (
            condition.event == event.type
            and filters_match(condition.where, properties)
            and correlated(condition.same, trigger, properties)
        ):
            return condition
    return None


def counts_for(session: Session, event: Event, enrollment: Enrollment) -> bool:
    """An event counts for an enrollment if it happened after its trigger (or entry), or
    arrived after the enrollment started (a late webhook about an earlier purchase)."""
    if event.id == enrollment.trigger_event_id:
        return False
    since = enrollment.entered_at
    if enrollment.trigger_event_id is not None:
        trigger = session.get(Event, enrollment.trigger_event_id)
        if trigger is not None:
            since = min(since, trigger.occurred_at)
    return event.occurred_at >= since or event.received_at >= enrollment.entered_at


def exit_on_event(session: Session, event: Event, now: datetime) -> list[int]:
    """End every running enrollment of the event's contact whose exit_on matches the event.

    The exit reason is the condition's ``as:`` word (e.g. ``converted``). Old events (see
    counts_for) and the enrollment's own trigger event do not count.
    Returns the exited enrollment ids. Flushes, never commits.
    """
    return exit_on_events(session, [event], now)


def exit_on_events(session: Session, events: list[Event], now: datetime) -> list[int]:
    """exit_on_event for events of distinct contacts (a round of an event batch): their
    running enrollments read in one query."""
    wanted = [
        e for e in events if e.contact_id is not None and may_react(session, "exits", e.type)
    ]
    if not wanted:
        return []
    running: dict[int, list[tuple[Enrollment, SequenceVersion]]] = {}
    for enrollment, version in session.execute(
        select(Enrollment, SequenceVersion)
        .join(SequenceVersion, SequenceVersion.id == Enrollment.version_id)
        .where(
            Enrollment.contact_id.in_(sorted({e.contact_id for e in wanted})),
            Enrollment.state.in_(RUNNING),
        )
        .order_by(Enrollment.id)
    ).all():
        running.setdefault(enrollment.contact_id, []).append((enrollment, version))
    triggers = _load_triggers(session, [
        enrollment
        for event in wanted
        for enrollment, version in running.get(event.contact_id or 0, [])
        if any(c.event == event.type for c in version_definition(version).exit_on)
    ])  # fmt: skip
    leaving = [
        (event, candidate.id, condition)
        for event in wanted
        for candidate, version in running.get(event.contact_id or 0, [])
        if (condition := _exit_condition(session, event, candidate, version)) is not None
    ]
    del triggers
    locked = lock_enrollments(session, [enrollment_id for _, enrollment_id, _ in leaving])
    exited: list[int] = []
    for event, enrollment_id, condition in leaving:
        row = locked.get(enrollment_id)
        if row is None or row.state not in RUNNING:
            continue
        finish(row, "exited", condition.reason, now)
        row.context = {**(row.context or {}), "exit_event_id": event.id}
        exited.append(enrollment_id)
        log.info("enrollment %s exited (%s) on event %s", enrollment_id, condition.reason, event.id)
    session.flush()
    return exited


def _load_triggers(session: Session, enrollments: list[Enrollment]) -> list[Event]:
    """The trigger events of the enrollments, loaded in one query (the identity map then
    answers counts_for and trigger_properties; keep the list while they are needed)."""
    ids = sorted({e.trigger_event_id for e in enrollments if e.trigger_event_id is not None})
    return list(session.scalars(select(Event).where(Event.id.in_(ids)))) if ids else []


def _exit_condition(
    session: Session, event: Event, candidate: Enrollment, version: SequenceVersion
) -> ExitCondition | None:
    """The running enrollment's exit_on condition the event matches, if any."""
    definition = version_definition(version)
    if not any(c.event == event.type for c in definition.exit_on):
        return None
    if not counts_for(session, event, candidate):
        return None
    return exit_condition_for(definition, event, trigger_properties(session, candidate))


def wake_waiting(session: Session, event: Event, now: datetime) -> list[int]:
    """Resume enrollments of the event's contact that wait_until this event type.

    The engine re-checks the event against the step's filters and window, so a
    non-matching event only re-arms the wait. Returns the enrollment ids that were woken.
    """
    return wake_waiting_for(session, [event], now)


def wake_waiting_for(session: Session, events: list[Event], now: datetime) -> list[int]:
    """wake_waiting for events of distinct contacts (a round of an event batch): the
    waiting enrollments read in one query."""
    wanted = {
        e.contact_id: e
        for e in events
        if e.contact_id is not None and may_react(session, "waits", e.type)
    }
    if not wanted:
        return []
    types = sorted({e.type for e in wanted.values()})
    waiting = session.execute(
        select(Enrollment.id, Enrollment.contact_id, Enrollment.waiting_for)
        .where(
            Enrollment.contact_id.in_(sorted(wanted)),
            Enrollment.state == "waiting",
            Enrollment.waiting_for.in_(types),
        )
        .order_by(Enrollment.contact_id, Enrollment.id)
    ).all()
    woken: list[int] = []
    locked = lock_enrollments(session, [
        enrollment_id
        for enrollment_id, contact_id, waiting_for in waiting
        if waiting_for == wanted[contact_id].type
    ])  # fmt: skip
    triggers = _load_triggers(session, list(locked.values()))
    for enrollment in locked.values():
        event = wanted[enrollment.contact_id]
        if enrollment.state != "waiting" or enrollment.waiting_for != event.type:
            continue
        enrollment.next_run_at = now
        advance_enrollment(session, enrollment.id, now, locked=enrollment)
        woken.append(enrollment.id)
    del triggers
    return woken
