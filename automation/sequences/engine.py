"""The enrollment state machine: run an enrollment's steps until it has to wait.

State lives on the Enrollment row: ``cursor`` (next step, e.g. "3.then.0"), ``state``
(active | waiting | done | exited), ``next_run_at`` (when it is due again) and ``context``
(last send, wait_until bookkeeping, split variants). Every call locks the row first, so
two workers advancing the same enrollment run one after the other, and the outbox row of
a send step is unique on (enrollment_id, step_key): at most one message per step.

Waits are anchored to the time they were due, not to when a worker got round to them, so
one pass "as of" a later time completes everything due by then.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from automation.core import outbox
from automation.core.bulk import rows_json
from automation.core.db import dialect_insert, is_postgres
from automation.core.models import Contact, Enrollment, Event, Message, MessageEvent
from automation.core.processing import at_batch_end, batch_memo, in_batch, run_batch_end
from automation.core.vocabulary import ENGAGEMENT
from automation.segments import load_rule, matches
from automation.sequences import cursor as cur
from automation.sequences.inserts import MESSAGES_PG
from automation.sequences.schema import (
    EngagementCondition,
    ExitStep,
    IfStep,
    SegmentCondition,
    SendStep,
    SequenceDefinition,
    SplitBranch,
    SplitStep,
    UpdateStep,
    WaitStep,
    WaitUntilStep,
    correlated,
    filters_match,
)
from automation.sequences.store import batch_sequence, load_version
from automation.sequences.waited import waited_events

RUNNING = ("active", "waiting")
MAX_STEPS = 1000
ENGAGED_TYPES = ENGAGEMENT  # one engagement meaning for segments and sequences


def lock_enrollment(session: Session, enrollment_id: int) -> Enrollment | None:
    """Load the enrollment with a row lock (PostgreSQL) / the write lock (SQLite), fresh."""
    return lock_enrollments(session, [enrollment_id]).get(enrollment_id)


def lock_enrollments(session: Session, enrollment_ids: list[int]) -> dict[int, Enrollment]:
    """lock_enrollment for several enrollments, in one statement (id order); id -> row."""
    ids = sorted(set(enrollment_ids))
    if not ids:
        return {}
    if not is_postgres(session):
        session.execute(
            update(Enrollment)
            .where(Enrollment.id.in_(ids))
            .values(cursor=Enrollment.cursor)
            .execution_options(synchronize_session=False)
        )
    query = select(Enrollment).where(Enrollment.id.in_(ids)).order_by(Enrollment.id)
    if is_postgres(session):
        query = query.with_for_update()
    rows = session.scalars(query.execution_options(populate_existing=True))
    return {row.id: row for row in rows}


def advance_enrollment(
    session: Session, enrollment_id: int, now: datetime, locked: Enrollment | None = None
) -> list[int]:
    """Run the enrollment's steps until it must wait or ends; returns new message ids.

    Does nothing if the enrollment is finished, not yet due, or its sequence is paused.
    Messages are handed to delivery after the transaction commits. Flushes, never commits.
    ``locked``: the enrollment, already locked by this transaction (it just created it).
    """
    created = try_advance(session, enrollment_id, now, locked)
    return created if created is not None else []


def try_advance(
    session: Session, enrollment_id: int, now: datetime, locked: Enrollment | None = None
) -> list[int] | None:
    """Like advance_enrollment, but None when there was nothing to run (not due, finished)."""
    enrollment = locked if locked is not None else lock_enrollment(session, enrollment_id)
    if enrollment is None or enrollment.state not in RUNNING:
        return None
    if enrollment.next_run_at is not None and enrollment.next_run_at > now:
        return None
    sequence = batch_sequence(session, enrollment.sequence_id)
    if sequence is None or sequence.status != "active":
        return None
    definition = load_version(session, enrollment.version_id)
    with session.no_autoflush:  # the steps read events and messages, never this row
        created = _Run(session, enrollment, definition, sequence.key, now).run()
    if not in_batch(session):  # an event batch flushes its enrollments together
        session.flush()
    outbox.after_commit(session, "messages", created)  # to the send queues once committed
    return created


def finish(enrollment: Enrollment, state: str, reason: str | None, now: datetime) -> None:
    """Mark an enrollment done or exited (with a reason) and clear its schedule."""
    enrollment.state = state
    enrollment.exit_reason = reason
    enrollment.finished_at = now
    enrollment.next_run_at = None
    enrollment.waiting_for = None


def split_bucket(sequence_key: str, contact_id: int, position: str) -> float:
    """A number in [0, 100) fixed for (sequence, split step, contact): the split position.

    The step's cursor is part of the hash, so two splits in one sequence are independent.
    """
    digest = hashlib.sha256(f"{sequence_key}:{position}:{contact_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10000 / 100.0


def choose_branch(step: SplitStep, bucket: float) -> SplitBranch:
    """The branch whose cumulative percentage range holds ``bucket``."""
    edge = 0.0
    for candidate in step.branches:
        edge += candidate.percent
        if bucket < edge:
            return candidate
    return step.branches[-1]


class _Run:
    """One advance of one enrollment."""

    def __init__(
        self,
        session: Session,
        enrollment: Enrollment,
        definition: SequenceDefinition,
        sequence_key: str,
        now: datetime,
    ) -> None:
        self.session = session
        self.enrollment = enrollment
        self.definition = definition
        self.sequence_key = sequence_key
        self.now = now
        self.context: dict[str, Any] = dict(enrollment.context or {})
        due = enrollment.next_run_at or now
        self.at = min(due, now)  # the time this step was due (anchor for the next wait)
        self.created: list[int] = []

    def run(self) -> list[int]:
        enrollment = self.enrollment
        enrollment.state = "active"
        enrollment.waiting_for = None
        position = enrollment.cursor or cur.first()
        for _ in range(MAX_STEPS):
            found = self.definition.resolve(position)
            if found is None:
                enrollment.cursor = position
                finish(enrollment, "done", None, self.now)
                break
            position, step = found
            enrollment.cursor = position
            following = self.execute(position, step)
            if following is None:
                break
            position = following
        else:  # pragma: no cover - definitions have no loops; guard against corrupt cursors
            raise RuntimeError(f"enrollment {enrollment.id} ran {MAX_STEPS} steps without waiting")
        enrollment.context = self.context
        return self.created

    def wait(self, until: datetime, position: str, waiting_for: str | None = None) -> None:
        self.enrollment.cursor = position
        self.enrollment.state = "waiting"
        self.enrollment.next_run_at = until
        self.enrollment.waiting_for = waiting_for

    def execute(self, position: str, step: Any) -> str | None:
        """Run one step; the cursor to continue at, or None when the enrollment stops."""
        if isinstance(step, WaitStep):
            until = self.at + step.duration
            following = cur.following(position)
            if until > self.now:
                self.wait(until, following)
                return None
            self.at = until
            return following
        if isinstance(step, WaitUntilStep):
            return self.wait_until(position, step)
        if isinstance(step, SendStep):
            self.send(position, step)
            return cur.following(position)
        if isinstance(step, IfStep):
            label = "then" if self.condition(step) else "else"
            return cur.branch(position, label)
        if isinstance(step, SplitStep):
            chosen = choose_branch(
                step, split_bucket(self.sequence_key, self.enrollment.contact_id, position)
            )
            self.context.setdefault("variants", {})[position] = chosen.name
            return cur.branch(position, chosen.name)
        if isinstance(step, UpdateStep):
            self.update(step)
            return cur.following(position)
        if isinstance(step, ExitStep):
            finish(self.enrollment, "exited", step.reason, self.now)
            return None
        raise TypeError(f"unknown step {step!r}")

    def wait_until(self, position: str, step: WaitUntilStep) -> str | None:
        state = self.context.get("wait_until")
        if not isinstance(state, dict) or state.get("cursor") != position:
            state = {
                "cursor": position,
                "since": self.window_start().isoformat(),
                "deadline": (self.at + step.timeout).isoformat(),
            }
            self.context["wait_until"] = state
        since = datetime.fromisoformat(state["since"])
        deadline = datetime.fromisoformat(state["deadline"])
        found = self.matching_event(step, since, min(deadline, self.now))
        if found is not None:
            self.context.pop("wait_until", None)
            self.context["wait_until_event_id"] = found.id
            self.at = min(max(found.occurred_at, since), self.now)
            return cur.branch(position, "on_event")
        if deadline <= self.now:
            self.context.pop("wait_until", None)
            self.at = deadline
            return cur.branch(position, "on_timeout")
        self.wait(deadline, position, step.event)
        return None

    def window_start(self) -> datetime:
        """Events count from the trigger event's time (or entry): already-happened is fine."""
        start = min(self.enrollment.entered_at, self.at)
        if self.enrollment.trigger_event_id is not None:
            trigger = self.session.get(Event, self.enrollment.trigger_event_id)
            if trigger is not None:
                start = min(start, trigger.occurred_at)
        return start

    def matching_event(self, step: WaitUntilStep, since: datetime, until: datetime) -> Event | None:
        entered = self.enrollment.entered_at
        held = waited_events(self.session, self.enrollment.contact_id, step.event)
        rows: Iterable[Event]
        if held is not None:  # the event batch read them up front: same filter, same order
            rows = [
                e for e in held
                if (e.occurred_at >= since or e.received_at >= entered) and e.occurred_at <= until
            ]  # fmt: skip
        else:
            rows = self.session.scalars(
                select(Event)
                .where(
                    Event.contact_id == self.enrollment.contact_id,
                    Event.type == step.event,
                    or_(Event.occurred_at >= since, Event.received_at >= entered),
                    Event.occurred_at <= until,
                )
                .order_by(Event.occurred_at, Event.id)
            )
        trigger = trigger_properties(self.session, self.enrollment)
        for row in rows:
            if row.id == self.enrollment.trigger_event_id:
                continue
            props = event_properties(row)
            if filters_match(step.where, props) and correlated(step.same, trigger, props):
                return row
        return None

    def send(self, position: str, step: SendStep) -> None:
        if self.context.get("holdout"):
            return  # a held-out enrollment walks its steps but sends nothing
        message_id = insert_message(
            self.session,
            {
                "enrollment_id": self.enrollment.id,
                "step_key": position,
                "contact_id": self.enrollment.contact_id,
                "channel": step.channel,
                "purpose": self.definition.purpose,
                "template": step.template,
                "status": "queued",
                "attempts": 0,
                "fallback": list(step.fallback),
                "rendered": step.outbox_rendered(),
                "links": {},
                "created_at": self.now,
                "updated_at": self.now,
            },
        )
        self.context["last_send"] = position
        if message_id is not None:
            self.created.append(message_id)

    def condition(self, step: IfStep) -> bool:
        cond = step.condition
        if isinstance(cond, EngagementCondition):
            return engaged(
                self.session,
                self.enrollment,
                self.definition,
                cond,
                self.now,
                self.context.get("last_send"),
            )
        assert isinstance(cond, SegmentCondition)
        return segment_rule_matches(self.session, cond, self.enrollment.contact_id, self.now)

    def update(self, step: UpdateStep) -> None:
        contact = self.session.get(Contact, self.enrollment.contact_id)
        if contact is None:
            return
        attributes = dict(contact.attributes or {})
        attributes.update(step.set)
        for key in step.unset:
            attributes.pop(key, None)
        tags = [t for t in (contact.tags or []) if t not in step.remove_tags]
        tags.extend(t for t in step.add_tags if t not in tags)
        contact.attributes = attributes
        contact.tags = tags
        contact.updated_at = self.now


def event_properties(event: Event) -> dict[str, Any]:
    """The ``properties`` part of an event payload."""
    payload = event.payload or {}
    props = payload.get("properties")
    return props if isinstance(props, dict) else {}


def trigger_properties(session: Session, enrollment: Enrollment) -> dict[str, Any] | None:
    """The properties of the event that started the enrollment (None without one)."""
    if enrollment.trigger_event_id is None:
        return None
    trigger = session.get(Event, enrollment.trigger_event_id)
    return event_properties(trigger) if trigger is not None else None


def insert_message(session: Session, values: dict[str, Any]) -> int | None:
    """INSERT the outbox row unless (enrollment_id, step_key) exists; the new id or None.

    In an event batch the row is written with the batch's other new rows, in one
    statement at its end (``None`` here; the ids go to the outbox hook then).
    """
    if in_batch(session):
        buffered: list[dict[str, Any]] = batch_memo(session, _BUFFER, list)
        buffered.append(values)
        at_batch_end(session, _BUFFER, insert_buffered_messages)
        return None
    stmt = _insert_message(session).values(**values)
    if session.new:
        session.flush()  # the enrollment row must exist; its pending changes can wait
    with session.no_autoflush:
        new_id: int | None = session.execute(stmt).scalar_one_or_none()
    return new_id


_BUFFER = "messages.buffer"


def _insert_message(session: Session) -> Any:
    return (
        dialect_insert(session)(Message)
        .on_conflict_do_nothing(index_elements=["enrollment_id", "step_key"])
        .returning(Message.id)
    )


def insert_buffered_messages(session: Session) -> list[int]:
    """Write the outbox rows this event batch buffered (one multi-row INSERT, duplicates of
    (enrollment, step) skipped); their ids go to the send queues once committed."""
    rows: list[dict[str, Any]] = batch_memo(session, _BUFFER, list)
    if not rows:
        return []
    values, rows[:] = list(rows), []
    session.flush()  # the enrollments must exist
    if is_postgres(session):  # one JSON document: insertmanyvalues' SQL ran to 200 KB
        ids = list(session.scalars(MESSAGES_PG, {"rows": rows_json(values)}))
    else:
        ids = [int(i) for i in session.scalars(_insert_message(session), values)]
    outbox.after_commit(session, "messages", ids)
    return ids


def step_messages(session: Session, enrollment_id: int, step_key: str) -> set[int]:
    """Ids of the message of one step and of its fallback messages."""
    run_batch_end(session)  # outbox rows an event batch buffered
    ids = set(
        session.scalars(
            select(Message.id).where(
                Message.enrollment_id == enrollment_id, Message.step_key == step_key
            )
        )
    )
    frontier = set(ids)
    while frontier:
        more = (
            set(session.scalars(select(Message.id).where(Message.fallback_from_id.in_(frontier))))
            - ids
        )
        ids |= more
        frontier = more
    return ids


def engaged(
    session: Session,
    enrollment: Enrollment,
    definition: SequenceDefinition,
    cond: EngagementCondition,
    now: datetime,
    last_send: Any,
) -> bool:
    """True when the message of the referenced step has a clicked/opened/replied event."""
    if cond.step == "previous":
        step_key = last_send if isinstance(last_send, str) else None
    else:
        step_key = definition.step_ids.get(cond.step)
    if step_key is None:
        return False
    ids = step_messages(session, enrollment.id, step_key)
    if not ids:
        return False
    hit = session.scalar(
        select(MessageEvent.id)
        .where(
            MessageEvent.message_id.in_(ids),
            MessageEvent.type.in_(ENGAGED_TYPES[cond.kind]),
            MessageEvent.occurred_at <= now,
        )
        .limit(1)
    )
    return hit is not None


def segment_rule_matches(
    session: Session, cond: SegmentCondition, contact_id: int, now: datetime
) -> bool:
    """Evaluate an ``if:`` segment rule for one contact."""
    return matches(session, load_rule(cond.rule_data, where=cond.where), contact_id, now)
