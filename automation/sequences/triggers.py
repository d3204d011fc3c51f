"""Enrol contacts: match an event against active sequences' triggers, audience and re-entry."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from automation.analytics.holdout import in_holdout
from automation.contacts.locks import lock_contact
from automation.core.clock import ensure_utc
from automation.core.db import one_of
from automation.core.events import SEGMENT_ENTERED
from automation.core.models import Enrollment, Event, Sequence, SequenceVersion
from automation.core.processing import BatchFailed, HandlerIncomplete, batch_memo, isolated
from automation.segments import in_segment
from automation.sequences.engine import RUNNING, advance_enrollment, event_properties
from automation.sequences.inserts import insert_enrollments
from automation.sequences.schema import (
    EventTrigger,
    Reentry,
    SegmentTrigger,
    SequenceDefinition,
    filters_match,
)
from automation.sequences.store import batch_definitions, get_sequence, version_definition

log = logging.getLogger(__name__)


def segment_key_of(properties: dict[str, Any]) -> str | None:
    """The segment key carried by a segment.entered / segment.exited event."""
    for name in ("segment", "segment_key", "key"):
        value = properties.get(name)
        if isinstance(value, str):
            return value
    return None


def trigger_matches(
    definition: SequenceDefinition, event_type: str, properties: dict[str, Any]
) -> bool:
    """True when an event of this type and properties starts the sequence."""
    trigger = definition.trigger
    if isinstance(trigger, EventTrigger):
        return event_type == trigger.event and filters_match(trigger.where, properties)
    assert isinstance(trigger, SegmentTrigger)
    return event_type == SEGMENT_ENTERED and segment_key_of(properties) == trigger.segment


History = dict[tuple[int, int], tuple[int, datetime | None]]


def reentry_history(session: Session, sequence_ids: set[int], contact_ids: set[int]) -> History:
    """(sequence id, contact id) -> (running enrollments, last entered_at), for the pairs
    that have any enrollment, in one query."""
    rows = session.execute(
        select(
            Enrollment.sequence_id,
            Enrollment.contact_id,
            func.count().filter(Enrollment.state.in_(RUNNING)),
            func.max(Enrollment.entered_at),
        )
        .where(
            Enrollment.contact_id.in_(sorted(contact_ids)),
            Enrollment.sequence_id.in_(sorted(sequence_ids)),
        )
        .group_by(Enrollment.sequence_id, Enrollment.contact_id)
    )
    return {(int(s), int(c)): (int(running), last) for s, c, running, last in rows}


def reentry_allows(
    session: Session,
    sequence_id: int,
    contact_id: int,
    reentry: Reentry,
    now: datetime,
    history: History | None = None,
) -> bool:
    """Apply the re-entry rule against the contact's earlier enrollments in this sequence
    (``history``: reentry_history already read for it).

    never: no earlier enrollment at all. always: no limit (one per trigger event).
    after D: none running, and the last one entered more than D ago.
    """
    if reentry.mode == "always":
        return True
    if history is None:
        history = reentry_history(session, {sequence_id}, {contact_id})
    found = history.get((sequence_id, contact_id))
    if found is None:
        return True
    if reentry.mode == "never":
        return False
    running, last = found
    if running:
        return False
    assert reentry.after is not None
    return last is None or ensure_utc(last) <= now - reentry.after


Request = tuple[Sequence, SequenceVersion, int, "Event | None"]


def enroll(
    session: Session,
    sequence: Sequence,
    version: SequenceVersion,
    contact_id: int,
    now: datetime,
    trigger_event: Event | None = None,
    check_audience: bool = True,
) -> Enrollment | None:
    """Create an enrollment on ``version`` if audience and re-entry allow, and advance it.

    Returns None when the contact may not enter. Flushes, never commits.
    """
    created = enroll_many(session, [(sequence, version, contact_id, trigger_event)], now,
                          check_audience)  # fmt: skip
    return created[0] if created else None


def enroll_many(
    session: Session, requests: list[Request], now: datetime, check_audience: bool = True
) -> list[Enrollment]:
    """enroll for several (sequence, version, contact, trigger event), each pair distinct:
    re-entry read in one query, the enrollments inserted in one statement, then each
    advanced. Returns the enrollments created (in request order)."""
    history: History = {}
    limited = [r for r in requests if version_definition(r[1]).reentry.mode != "always"]
    if limited:
        history = reentry_history(session, {r[0].id for r in limited}, {r[2] for r in limited})
    created = [
        enrollment
        for sequence, version, contact_id, trigger_event in requests
        if (enrollment := _admit(session, sequence, version, contact_id, now, trigger_event,
                                 check_audience, history)) is not None
    ]  # fmt: skip
    insert_enrollments(session, created)
    for enrollment in created:
        advance_enrollment(session, enrollment.id, now, locked=enrollment)
    return created


def _admit(
    session: Session,
    sequence: Sequence,
    version: SequenceVersion,
    contact_id: int,
    now: datetime,
    trigger_event: Event | None,
    check_audience: bool,
    history: History,
) -> Enrollment | None:
    """The new (unsaved) enrollment when audience and re-entry let the contact in."""
    definition = version_definition(version)
    if not lock_contact(session, contact_id):  # serialise enrolment decisions per contact
        return None
    if (
        check_audience
        and definition.audience is not None
        and not in_segment(session, definition.audience, contact_id)
    ):
        log.info(
            "contact %s not in audience %s of %s", contact_id, definition.audience, sequence.key
        )
        return None
    if not reentry_allows(session, sequence.id, contact_id, definition.reentry, now, history):
        return None
    context: dict[str, Any] = {}
    if in_holdout(sequence.key, contact_id, definition.analytics.holdout):
        context["holdout"] = True  # walks the steps, sends nothing (automation.analytics)
    if trigger_event is not None:
        context["trigger_event_type"] = trigger_event.type
    return Enrollment(
        sequence_id=sequence.id,
        version_id=version.id,
        contact_id=contact_id,
        state="active",
        cursor="0",
        next_run_at=now,
        context=context,
        trigger_event_id=trigger_event.id if trigger_event is not None else None,
        entered_at=now,
    )


def enroll_from_event(session: Session, event: Event, now: datetime) -> list[int]:
    """Enrol the event's contact in every active sequence whose trigger it matches.

    Each sequence is enrolled in its own SAVEPOINT: one that fails (a bug, a value out of
    range) does not undo the others. The failures are raised together afterwards, so the
    event records them and is retried; a retry skips sequences this event already enrolled.
    """
    if event.contact_id is None:
        return []
    properties = event_properties(event)
    created: list[int] = []
    failed: list[str] = []
    definitions = batch_definitions(session)
    for sequence, version, definition in definitions:
        if not trigger_matches(definition, event.type, properties):
            continue
        if _enrolled_by(session, sequence.id, event):
            continue
        try:
            with isolated(session):
                enrollment = enroll(session, sequence, version, event.contact_id, now, event)
        except (OperationalError, InterfaceError, BatchFailed):
            raise
        except Exception as exc:  # noqa: BLE001 - isolated; raised together below
            failed.append(f"{sequence.key}: {type(exc).__name__}: {exc}")
            continue
        if enrollment is not None:
            created.append(enrollment.id)
            _triggered(session).get(event.id, set()).add(sequence.id)
    if failed:
        raise SequenceTriggerError("; ".join(failed))
    return created


def _triggered(session: Session) -> dict[int, set[int]]:
    """event id -> sequences it already enrolled the contact in, for the events of this
    batch (note_triggered); empty outside a batch."""
    known: dict[int, set[int]] = batch_memo(session, "triggered", dict)
    return known


def note_triggered(session: Session, events: list[Event]) -> None:
    """Event batch preparation: which sequences each event already enrolled its contact in
    (an event processed before), for all of them in one query."""
    known = _triggered(session)
    ids = [e.id for e in events if e.contact_id is not None and e.id not in known]
    if not ids:
        return
    for event_id in ids:
        known[event_id] = set()
    for sequence_id, trigger_id in session.execute(
        select(Enrollment.sequence_id, Enrollment.trigger_event_id).where(
            one_of(session, Enrollment.contact_id, {e.contact_id for e in events}),  # its index
            one_of(session, Enrollment.trigger_event_id, ids),
        )
    ):
        known[int(trigger_id or 0)].add(int(sequence_id))


def enroll_from_events(session: Session, events: list[Event], now: datetime) -> list[int]:
    """enroll_from_event for a round of an event batch (one event per contact), set-based
    (enroll_many). A failure fails the batch, which is redone one event at a time."""
    definitions = batch_definitions(session)
    requests: list[Request] = []
    for event in events:
        if event.contact_id is None:
            continue
        properties = event_properties(event)
        for sequence, version, definition in definitions:
            if trigger_matches(definition, event.type, properties) and not _enrolled_by(
                session, sequence.id, event
            ):
                requests.append((sequence, version, event.contact_id, event))
    if not requests:
        return []
    with isolated(session):
        created = enroll_many(session, requests, now)
    for enrollment in created:
        if enrollment.trigger_event_id is not None:
            _triggered(session).get(enrollment.trigger_event_id, set()).add(enrollment.sequence_id)
    return [e.id for e in created]


class SequenceTriggerError(HandlerIncomplete):
    """One or more sequences failed to enrol a contact on an event (the others did)."""


def _enrolled_by(session: Session, sequence_id: int, event: Event) -> bool:
    known = _triggered(session).get(event.id)
    if known is not None:  # the batch looked for this event's enrollments up front
        return sequence_id in known
    query = select(Enrollment.id).where(
        Enrollment.contact_id == event.contact_id,
        Enrollment.sequence_id == sequence_id,
        Enrollment.trigger_event_id == event.id,
    )
    return session.scalar(query.limit(1)) is not None


def enroll_contact(
    session: Session, key: str, contact_id: int, now: datetime, check_audience: bool = True
) -> Enrollment | None:
    """Enrol a contact by sequence key (operators, demos); None if rules forbid it."""
    sequence = get_sequence(session, key)
    if sequence.current_version_id is None or sequence.status != "active":
        return None
    version = session.get(SequenceVersion, sequence.current_version_id)
    assert version is not None
    return enroll(session, sequence, version, contact_id, now, None, check_audience)
