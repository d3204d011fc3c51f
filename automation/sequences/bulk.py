"""Set-based enrollment: thousands of ``segment.entered`` events in a few statements.

A segment refresh that moves thousands of contacts records one ``segment.entered`` /
``segment.exited`` event each. Processing them one at a time (``process_event``) costs a
dozen queries per contact. ``process_segment_events`` claims a batch of them and does
the same work with set-based statements:

1. claim: ``UPDATE events SET processed_at`` on the batch (the same claim as
   process_event, so an event is processed once whichever path takes it);
2. per active sequence triggered by the segment: audience and re-entry checked for the
   whole batch (one query each, ids passed as one array), then ``INSERT INTO enrollments
   ... SELECT`` from the events of the contacts allowed in;
3. the first steps up to the first wait are planned once per version (they do not depend
   on the contact: send, wait, exit) and written with one ``INSERT INTO messages ...
   SELECT``; a version whose first steps depend on the contact (if, split, update,
   wait_until) is advanced per enrollment by the engine instead.

Only events that this path handles exactly like the process_event handler table are
taken (``simple``): the contact has no other unprocessed event (order matters), no
running enrollment waits for the event type, and no active sequence exits on it. Every
other event is left to process_event. Both paths give the same enrollments and first
messages (tests/sequences/test_bulk.py runs both on the same data).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    Select,
    Table,
    bindparam,
    func,
    literal,
    not_,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session

from automation.core import clock, outbox
from automation.core.db import dialect_insert, is_postgres, one_of
from automation.core.events import SEGMENT_ENTERED, SEGMENT_EXITED
from automation.core.models import (
    Contact,
    Enrollment,
    Event,
    Message,
    Segment,
    SegmentMembership,
    Sequence,
    SequenceVersion,
)
from automation.sequences import cursor as cur
from automation.sequences.engine import RUNNING, try_advance
from automation.sequences.schema import ExitStep, SegmentTrigger, SendStep, SequenceDefinition
from automation.sequences.schema import WaitStep as Wait
from automation.sequences.store import active_definitions
from automation.sequences.triggers import segment_key_of

BATCH = 5000
SEGMENT_EVENTS = (SEGMENT_ENTERED, SEGMENT_EXITED)
_enrollments = cast(Table, Enrollment.__table__)
_messages = cast(Table, Message.__table__)


@dataclass
class Plan:
    """What advancing a fresh enrollment does before it waits, the same for every contact."""

    sends: list[tuple[str, SendStep]] = field(default_factory=list)
    state: str = "active"
    cursor: str = "0"
    next_run_at: datetime | None = None
    finished_at: datetime | None = None
    exit_reason: str | None = None


def plan_first_steps(definition: SequenceDefinition, now: datetime) -> Plan | None:
    """The engine's first advance as a plan, or None when a step depends on the contact."""
    plan, position, at = Plan(), cur.first(), now
    while True:
        found = definition.resolve(position)
        if found is None:
            plan.cursor, plan.state, plan.finished_at = position, "done", now
            return plan
        position, step = found
        if isinstance(step, SendStep):
            plan.sends.append((position, step))
            position = cur.following(position)
        elif isinstance(step, Wait):
            until, position = at + step.duration, cur.following(position)
            if until > now:
                plan.cursor, plan.state, plan.next_run_at = position, "waiting", until
                return plan
            at = until
        elif isinstance(step, ExitStep):
            plan.cursor, plan.state, plan.finished_at = position, "exited", now
            plan.exit_reason = step.reason
            return plan
        else:
            return None


def process_segment_events(session: Session, now: datetime) -> int:
    """Process pending segment events set-based, batch after batch; returns how many.

    Commits after each batch. Events it does not take are left for process_event.
    """
    total = 0
    left: set[int] = set()  # events given back to process_event in this call
    while True:
        claimed, taken = _one_batch(session, now, left)
        session.commit()
        if claimed == 0:
            return total
        total += taken


def _one_batch(session: Session, now: datetime, left: set[int]) -> tuple[int, int]:
    """Claim one batch and process what it may; (events looked at, events processed)."""
    if not _candidates(session, list(SEGMENT_EVENTS), now, left, limit=1):
        return 0, 0  # nothing pending: the definitions need not be read
    definitions = active_definitions(session)
    exit_types = {c.event for _, _, d in definitions for c in d.exit_on}
    types = [t for t in SEGMENT_EVENTS if t not in exit_types]
    if not types:
        return 0, 0
    candidates = _candidates(session, types, now, left)
    if not candidates:
        return 0, 0
    busy = _busy(session, types, sorted({c for _, c in candidates}))
    left.update(e for e, c in candidates if c in busy)
    events = _claim(session, [e for e, c in candidates if c not in busy])
    seen: dict[tuple[str, int], int] = {}
    again: set[int] = set()  # contacts entering one segment twice: process_event keeps order
    for event_id, event_type, contact_id, payload in events:
        props = payload.get("properties") if isinstance(payload, dict) else None
        key = segment_key_of(props) if isinstance(props, dict) else None
        if event_type == SEGMENT_ENTERED and key is not None:
            if (key, contact_id) in seen:
                again.add(contact_id)
            seen[(key, contact_id)] = event_id
    back = [e for e, _, c, _ in events if c in again]
    if back:
        _unclaim(session, back)
        left.update(back)
    by_segment: dict[str, list[tuple[int, int]]] = {}
    for (key, contact_id), event_id in seen.items():
        if contact_id not in again:
            by_segment.setdefault(key, []).append((event_id, contact_id))
    for sequence, version, definition in definitions:
        trigger = definition.trigger
        if isinstance(trigger, SegmentTrigger) and trigger.segment in by_segment:
            _enroll(session, sequence, version, definition, by_segment[trigger.segment], now)
    return len(candidates), len(events) - len(back)


def _candidates(
    session: Session, types: list[str], now: datetime, left: set[int], limit: int = BATCH
) -> list[tuple[int, int]]:
    """(event id, contact id) of up to ``limit`` pending segment events, oldest first."""
    query = _pending_statement(tuple(types), limit, is_postgres(session))
    if left:
        query = query.where(not_(one_of(session, Event.id, sorted(left))))
    rows = session.execute(query, {"now": now})
    return [(int(e), int(c)) for e, c in rows if c is not None]


@functools.lru_cache(maxsize=64)  # one per set of trigger types and limit
def _pending_statement(
    types: tuple[str, ...], limit: int, postgres: bool
) -> Select[int, int | None]:
    """_candidates' SELECT, built (and cache-keyed) once per shape; ``now`` a parameter."""
    query = (
        select(Event.id, Event.contact_id)
        .where(
            # The type through coalesce (never NULL): with the type index usable, SQLite
            # reads every segment event ever recorded instead of ix_events_pending's few.
            func.coalesce(Event.type, "").in_(types),
            Event.processed_at.is_(None),
            Event.dead_at.is_(None),  # dead: out of the pending list until retried
            Event.received_at <= bindparam("now"),
            Event.contact_id.is_not(None),
        )
        .order_by(Event.id)
        .limit(limit)
    )
    return query.with_for_update(skip_locked=True, of=Event) if postgres else query


def _busy(session: Session, types: list[str], contacts: list[int]) -> set[int]:
    """Contacts whose events must keep their order: another kind of event pending, or a
    running enrollment waiting for a segment event."""
    pending = select(Event.contact_id).where(
        one_of(session, Event.contact_id, contacts),
        Event.processed_at.is_(None),
        Event.type.not_in(types),
    )
    waiting = select(Enrollment.contact_id).where(
        one_of(session, Enrollment.contact_id, contacts),
        Enrollment.state == "waiting",
        Enrollment.waiting_for.in_(SEGMENT_EVENTS),
    )
    return {int(c) for c in session.scalars(pending.union(waiting)) if c is not None}


def _claim(session: Session, ids: list[int]) -> list[tuple[int, str, int, Any]]:
    """Mark the events processed (the process_event claim); (id, type, contact, payload)."""
    if not ids:
        return []
    claimed = session.execute(
        update(Event)
        .where(one_of(session, Event.id, ids), Event.processed_at.is_(None))
        .values(processed_at=clock.now())
        .returning(Event.id, Event.type, Event.contact_id, Event.payload)
        .execution_options(synchronize_session=False)
    )
    return sorted((int(i), str(t), int(c), p) for i, t, c, p in claimed)



def _unclaim(session: Session, ids: list[int]) -> None:
    """Give claimed events back to process_event (same transaction: nobody saw the claim)."""
    session.execute(
        update(Event)
        .where(one_of(session, Event.id, ids))
        .values(processed_at=None)
        .execution_options(synchronize_session=False)
    )


def _enroll(
    session: Session,
    sequence: Sequence,
    version: SequenceVersion,
    definition: SequenceDefinition,
    entries: list[tuple[int, int]],
    now: datetime,
) -> None:
    """INSERT ... SELECT the enrollments these (event, contact) start, then their first steps."""
    contacts = sorted(c for _, c in entries)
    if is_postgres(session):  # serialise with incremental enrolment (contacts.locks.lock_contact)
        session.execute(
            select(Contact.id)
            .where(one_of(session, Contact.id, contacts))
            .order_by(Contact.id)
            .with_for_update()
        )
    allowed = _allowed(session, sequence, definition, contacts, now)
    event_ids = [e for e, c in entries if c in allowed]
    if not event_ids:
        return
    plan = plan_first_steps(definition, now)
    context: dict[str, Any] = {"trigger_event_type": SEGMENT_ENTERED}
    if plan is not None and plan.sends:
        context["last_send"] = plan.sends[-1][0]
    fresh = plan or Plan(next_run_at=now)
    source = select(
        literal(sequence.id),
        literal(version.id),
        Event.contact_id,
        literal(fresh.state),
        literal(fresh.cursor),
        bindparam("next_run_at", fresh.next_run_at, type_=_enrollments.c.next_run_at.type),
        bindparam("context", context, type_=_enrollments.c.context.type),
        Event.id,
        bindparam("entered_at", now, type_=_enrollments.c.entered_at.type),
        bindparam("finished_at", fresh.finished_at, type_=_enrollments.c.finished_at.type),
        literal(fresh.exit_reason, type_=_enrollments.c.exit_reason.type),
    ).where(one_of(session, Event.id, event_ids))
    columns = ["sequence_id", "version_id", "contact_id", "state", "cursor", "next_run_at",
               "context", "trigger_event_id", "entered_at", "finished_at", "exit_reason"]
    new_ids = list(session.scalars(
        _enrollments.insert().from_select(columns, source).returning(_enrollments.c.id)
    ))
    if plan is None:
        for enrollment_id in sorted(new_ids):
            try_advance(session, enrollment_id, now)
        return
    created: list[int] = []
    for position, step in plan.sends:
        created += _insert_messages(session, new_ids, position, step, definition.purpose, now)
    outbox.after_commit(session, "messages", created)


def _allowed(
    session: Session,
    sequence: Sequence,
    definition: SequenceDefinition,
    contacts: list[int],
    now: datetime,
) -> set[int]:
    """The contacts that audience and re-entry let into the sequence (like triggers.enroll)."""
    allowed = set(contacts)
    if definition.audience is not None:
        allowed &= set(session.scalars(
            select(SegmentMembership.contact_id)
            .join(Segment, Segment.id == SegmentMembership.segment_id)
            .where(
                Segment.key == definition.audience,
                SegmentMembership.exited_at.is_(None),
                one_of(session, SegmentMembership.contact_id, contacts),
            )
        ))
    reentry = definition.reentry
    if reentry.mode == "always":
        return allowed
    earlier = select(Enrollment.contact_id).where(
        Enrollment.sequence_id == sequence.id, one_of(session, Enrollment.contact_id, contacts)
    )
    if reentry.mode == "after":
        assert reentry.after is not None
        earlier = earlier.where(
            or_(Enrollment.state.in_(RUNNING), Enrollment.entered_at > now - reentry.after)
        )
    return allowed - set(session.scalars(earlier))


def _insert_messages(
    session: Session,
    enrollment_ids: list[int],
    position: str,
    step: SendStep,
    purpose: str,
    now: datetime,
) -> list[int]:
    """One queued outbox row per enrollment for a send step (unique per enrollment, step)."""
    source = select(
        _enrollments.c.id,
        literal(position),
        _enrollments.c.contact_id,
        literal(step.channel),
        literal(purpose),
        literal(step.template),
        literal("queued"),
        literal(0),
        bindparam("fallback", list(step.fallback), type_=_messages.c.fallback.type),
        bindparam("rendered", step.outbox_rendered(), type_=_messages.c.rendered.type),
        bindparam("links", {}, type_=_messages.c.links.type),
        bindparam("created_at", now, type_=_messages.c.created_at.type),
        bindparam("updated_at", now, type_=_messages.c.updated_at.type),
    ).where(one_of(session, _enrollments.c.id, enrollment_ids))
    columns = ["enrollment_id", "step_key", "contact_id", "channel", "purpose", "template",
               "status", "attempts", "fallback", "rendered", "links", "created_at", "updated_at"]
    stmt = (
        dialect_insert(session)(Message)
        .from_select(columns, source)
        .on_conflict_do_nothing(index_elements=["enrollment_id", "step_key"])
        .returning(Message.id)
    )
    return [int(i) for i in session.scalars(stmt)]
