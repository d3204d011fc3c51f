"""process_event: apply one stored event to the domain, exactly once, handler by handler.

Each handler runs in its own SAVEPOINT: one that raises is rolled back alone, the others'
work (facts, memberships, other sequences' enrollments) is kept. The event then counts a
failed attempt and names the handlers still to run; the next attempt runs only those.
After EVENT_MAX_ATTEMPTS failed attempts the event is dead (``dead_at`` and its reason):
it leaves the pending list, so processing moves on, until ``retry_dead_events``.

``process_pending_events`` is the scheduler's catch-up: every stored event nobody
processed yet (its queue message was lost, a handler failed, or a task of the pass
just emitted it), in batches (``process_events``): one claim and one commit per batch,
and no savepoints while nothing fails. A batch in which anything fails rolls back as a
whole and is processed again one event at a time with the savepoints above, so one bad
event is recorded per the rules and never fails (or loses) the others.

A batch is set-based: PREPARE steps load or lock up front what its handlers would fetch
per event; the events run in rounds (automation.core.rounds: no contact, order or cart
twice in a round), each handler once per round, through its round form (ROUND_FORMS)
where it has one; writes deferred with ``at_batch_end`` happen just before the commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import (
    CompoundSelect,
    Select,
    String,
    cast,
    func,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session

from automation.core import outbox
from automation.core.claims import each, work_in_batches
from automation.core.clock import now
from automation.core.config import get_settings
from automation.core.db import one_of
from automation.core.eventlog import recorded_events
from automation.core.models import Event, Segment, Sequence, SequenceVersion
from automation.core.rounds import split_rounds

log = logging.getLogger(__name__)

EventHandler = Callable[[Session, Event], None]
BatchStep = Callable[[Session, list[Event]], None]
#: Called for every processed event, in order; the runtime installs its table at startup.
HANDLERS: list[EventHandler] = []
#: A handler's set-based form: in a batch it takes a whole round of events at once
#: (automation.core.rounds: at most one event per contact, order and cart).
ROUND_FORMS: dict[EventHandler, BatchStep] = {}
#: Called once per optimistic batch with the events it claims (and again with each set of
#: follow-ups), before their handlers: loads or locks up front what the handlers would
#: otherwise fetch one event at a time (into batch_memo).
PREPARE: list[BatchStep] = []
MAX_FOLLOW_UP_DEPTH = 3
FOLLOW_UP_TYPES = ("segment.entered", "segment.exited")
REASON_CHARS = 500
_OPTIMISTIC = "events.optimistic_batch"  # session.info flag while process_events runs a batch
_MEMO = "events.batch_memo"  # session.info: what the events of one batch share (batch_memo)
_AT_END = "events.at_batch_end"  # session.info: writes deferred to the end of the batch
T = TypeVar("T")


class HandlerIncomplete(Exception):
    """Raised by a handler that isolated part of its work which failed: what it did is kept
    (its savepoint is released), the failure is recorded and the handler runs again."""


class BatchFailed(Exception):
    """Work inside ``isolated`` failed during an optimistic batch: the batch is redone one
    event at a time, where the failure is isolated and recorded."""


@contextmanager
def isolated(session: Session) -> Iterator[None]:
    """A SAVEPOINT around work whose failure must not undo the rest of the event.

    In an optimistic batch (``process_events``) there is no savepoint: a failure raises
    BatchFailed, the batch rolls back and is processed again event by event, isolated.
    """
    if not session.info.get(_OPTIMISTIC):
        with session.begin_nested():
            yield
        return
    try:
        yield
    except (OperationalError, InterfaceError, BatchFailed):
        raise
    except Exception as exc:  # noqa: BLE001 - the batch is redone with savepoints
        raise BatchFailed(f"{type(exc).__name__}: {exc}") from exc


def in_batch(session: Session) -> bool:
    """True while the session runs an optimistic batch of events (``process_events``)."""
    return _MEMO in session.info


def batch_memo(session: Session, key: str, load: Callable[[], T]) -> T:
    """``load()`` computed once per optimistic batch and shared by all of its events
    (definitions, contacts already locked); outside a batch, computed on every call.

    The batch is one transaction, so what it memoises cannot change under it except by
    its own writes; a memo the handlers write to must be kept current by them.
    """
    memo: dict[str, Any] | None = session.info.get(_MEMO)
    if memo is None:
        return load()
    if key not in memo:
        memo[key] = load()
    value: T = memo[key]
    return value


#: Rows that change whenever a stored definition the handlers read changes: a segment's
#: key or rule (its hash), a sequence's key, status or current version, a version's hash
#: (ids are not enough: SQLite may give a deleted row's id to the next one).
DEFINITIONS_STAMP: CompoundSelect[Any] = union_all(
    select(literal_column("'g'"), Segment.id, Segment.key + ":" + Segment.definition_hash),
    select(
        literal_column("'s'"),
        Sequence.id,
        Sequence.key + ":" + Sequence.status + ":"
        + func.coalesce(cast(Sequence.current_version_id, String), ""),
    ),
    select(literal_column("'v'"), SequenceVersion.id, SequenceVersion.definition_hash),
)
_LASTING: dict[tuple[str, str], tuple[frozenset[Any], Any]] = {}


def lasting_memo(session: Session, key: str, load: Callable[[], T]) -> T:
    """batch_memo for what is derived from stored definitions only (segments, sequences):
    kept by the process across batches while DEFINITIONS_STAMP reads the same (one query
    per batch instead of loading them again); outside a batch, computed on every call.

    ``load`` must return values that outlive its session: no ORM instance attached to it.
    """
    if not in_batch(session):
        return load()

    def lasting() -> T:
        stamp = batch_memo(session, "definitions.stamp", lambda: _definitions_stamp(session))
        slot = (str(session.get_bind().engine.url), key)
        cached = _LASTING.get(slot)
        if cached is not None and cached[0] == stamp:
            value: T = cached[1]
            return value
        fresh = load()
        _LASTING[slot] = (stamp, fresh)
        return fresh

    return batch_memo(session, key, lasting)


def _definitions_stamp(session: Session) -> frozenset[Any]:
    return frozenset(tuple(row) for row in session.execute(DEFINITIONS_STAMP))


def at_batch_end(session: Session, key: str, write: Callable[[Session], object]) -> None:
    """In an optimistic batch, run ``write(session)`` once (per ``key``) before the batch
    commits: a handler defers writes there to do them together. Outside a batch, now."""
    pending: dict[str, Callable[[Session], object]] | None = session.info.get(_AT_END)
    if pending is None:
        write(session)
        return
    pending.setdefault(key, write)


def run_batch_end(session: Session) -> None:
    """Run the writes deferred with at_batch_end so far (a reader that needs them calls
    this first); each runs once, until deferred again."""
    pending: dict[str, Callable[[Session], object]] = session.info.get(_AT_END) or {}
    while pending:
        _key, write = pending.popitem()
        write(session)


def use_handlers(
    handlers: Iterable[EventHandler],
    prepare: Iterable[BatchStep] = (),
    round_forms: dict[EventHandler, BatchStep] | None = None,
) -> None:
    """Make ``handlers`` (in this order) the functions called for every processed event,
    ``prepare`` the steps run once per batch before them, and ``round_forms`` the
    set-based forms some of them have (used for a batch's rounds)."""
    HANDLERS[:] = list(handlers)
    PREPARE[:] = list(prepare)
    ROUND_FORMS.clear()
    ROUND_FORMS.update(round_forms or {})


def prepare_events(session: Session, events: list[Event], least: int = 1) -> None:
    """Run the batch preparation steps for ``events`` (in a batch; idempotent): the claim
    does, and a handler that gave an event its contact does again. Fewer than ``least``
    events are not worth it (the handlers look up what they need themselves)."""
    if len(events) >= least and in_batch(session):
        for step in PREPARE:
            step(session, events)


def handler_name(handler: EventHandler) -> str:
    """The name an event records for a handler still to run (module.function)."""
    module = getattr(handler, "__module__", "") or ""
    return f"{module.rsplit('.', 1)[-1]}.{getattr(handler, '__name__', repr(handler))}"


def process_event(
    session: Session, event_id: int, _depth: int = 0, max_attempts: int | None = None
) -> bool:
    """Run every handler for the event once; returns True when all of them succeeded.

    Returns False if the event was already processed, is dead, or a handler failed (the
    failure is recorded on the event and the others' work kept). Internal events the
    handlers record for the same contact (segment.entered / exited) are processed right
    after, in the same transaction, so a sequence triggered by a segment entry starts now.
    """
    claimed = _claim(session, Event.id == event_id, Event.dead_at.is_(None))
    return bool(claimed) and _apply(session, claimed[0], _depth, max_attempts)


def _apply(session: Session, event: Event, depth: int, max_attempts: int | None) -> bool:
    """Run the claimed event's handlers, record the outcome, then its follow-up events."""
    event_id = event.id
    failures = _run_handlers(session, event)
    if failures:
        _record_failure(session, event, failures, max_attempts)
    else:
        event.failed_handlers = None
        log.info("event processed", extra={"event_id": event_id, "type": event.type})
    if event.contact_id is not None and depth < MAX_FOLLOW_UP_DEPTH:
        for follow_up in _claim_follow_ups(session, [event]):
            _apply(session, follow_up, depth + 1, max_attempts)
    return not failures


def _run_handlers(session: Session, event: Event) -> dict[str, str]:
    """Run the handlers the event still needs, each in a savepoint; name -> reason of failures."""
    wanted = set(event.failed_handlers.split(",")) if event.failed_handlers else None
    failures: dict[str, str] = {}
    for handler in HANDLERS:
        name = handler_name(handler)
        if wanted is not None and name not in wanted:
            continue
        try:
            with session.begin_nested():
                try:
                    handler(session, event)
                except HandlerIncomplete as exc:  # keep its work, record the rest
                    failures[name] = str(exc)[:REASON_CHARS]
                    log.warning(
                        "event handler incomplete: %s",
                        failures[name],
                        extra={"event_id": event.id, "handler": name,
                               "failure_key": f"event-handler:{event.id}:{name}"},
                    )
                    continue
        except (OperationalError, InterfaceError):
            raise  # the database itself is failing: the whole attempt is retried later
        except Exception as exc:  # noqa: BLE001 - isolated, recorded on the event
            failures[name] = f"{type(exc).__name__}: {exc}"[:REASON_CHARS]
            log.warning(
                "event handler failed",
                exc_info=True,
                extra={
                    "event_id": event.id,
                    "handler": name,
                    "failure_key": f"event-handler:{event.id}:{name}",
                },
            )
    return failures


def _record_failure(
    session: Session, event: Event, failures: dict[str, str], max_attempts: int | None
) -> None:
    """Count a failed attempt; the event waits for the next pass, or is dead at the limit."""
    if max_attempts is None:
        max_attempts = get_settings().event_max_attempts
    event.attempts = (event.attempts or 0) + 1
    event.failed_handlers = ",".join(failures)[:500]
    event.failure = "; ".join(f"{name}: {reason}" for name, reason in failures.items())
    event.processed_at = None
    if event.attempts >= max_attempts:
        event.dead_at = now()
        log.error(
            "event dead after %d attempts",
            event.attempts,
            extra={"event_id": event.id, "type": event.type, "reason": event.failure},
        )
    session.flush()


def process_pending_events(session: Session, at: datetime) -> int:
    """Process, inline, every stored live event received by ``at`` that is not processed yet.

    Batches of claims.BATCH events (locked FOR UPDATE SKIP LOCKED on PostgreSQL, so a
    racing pass skips them), each committed once. An event that fails is left for the
    next pass. Returns how many events were processed with every handler succeeding.
    """
    return work_in_batches(
        session, pending_query(at), Event, lambda ids, skip: process_events(session, ids, skip)
    )


def pending_query(at: datetime) -> Select[int]:
    """Ids of the live events received by ``at`` and not processed yet, in id order (the
    partial index ix_events_pending holds just those rows)."""
    return (
        select(Event.id)
        .where(Event.processed_at.is_(None), Event.dead_at.is_(None), Event.received_at <= at)
        .order_by(Event.id)
    )


def process_events(session: Session, ids: list[int], skip: set[int] | None = None) -> int:
    """Process the events ``ids`` (in id order) in one transaction and commit it.

    Optimistic: every handler runs without savepoints. If anything fails, the whole batch
    rolls back and each event is processed again on its own (``process_event``, savepoints
    per handler, a commit per batch), so the failure is recorded on its event alone.
    Returns how many events succeeded; ids that did not are added to ``skip``.
    """
    skip = skip if skip is not None else set()
    done = optimistic_batch(session, lambda: _process_claimed(session, ids))
    if done is not None:
        return done

    def one(event_id: int) -> bool:
        succeeded = process_event(session, event_id)
        if not succeeded:
            skip.add(event_id)
        return succeeded

    return each(session, ids, one, skip)


def optimistic_batch(session: Session, work: Callable[[], int]) -> int | None:
    """Run ``work()`` as one optimistic batch (in_batch: no savepoints, batch_memo shared,
    at_batch_end writes) and commit it; its count, or None when it failed and was rolled
    back (the caller then redoes its items one at a time, isolated). A failing database
    raises."""
    session.info[_OPTIMISTIC] = True
    session.info[_MEMO] = {}
    session.info[_AT_END] = {}
    try:
        done = work()
        run_batch_end(session)
        _end_batch(session)
        session.commit()
        return done
    except (OperationalError, InterfaceError):
        session.rollback()
        raise
    except Exception as exc:  # noqa: BLE001 - the caller redoes the items one at a time
        session.rollback()
        log.info("batch redone one item at a time: %s: %s", type(exc).__name__, exc)
        return None
    finally:
        _end_batch(session)


def _end_batch(session: Session) -> None:
    for key in (_OPTIMISTIC, _MEMO, _AT_END):
        session.info.pop(key, None)


def process_in_batch(session: Session, ids: list[int]) -> int:
    """Inside an optimistic batch (``optimistic_batch``): claim and apply the events ``ids``
    as ``process_events`` does, committed with the batch's other writes; how many."""
    return _process_claimed(session, ids)


def _process_claimed(session: Session, ids: list[int]) -> int:
    """Claim the live events among ``ids`` with one UPDATE and apply each; how many succeeded."""
    events = _claim(session, one_of(session, Event.id, ids), Event.dead_at.is_(None))
    prepare_events(session, events, least=2)
    return _apply_rounds(session, events, 0)


def _apply_rounds(session: Session, events: list[Event], depth: int) -> int:
    """Apply claimed events of an optimistic batch round by round (split_rounds): each
    handler once per round, set-based where it has a round form; then the follow-ups of
    the round's contacts, as rounds of their own. Returns how many events were applied."""
    for round_ in split_rounds(events):
        recorded_before = recorded_events(session)
        for handler in HANDLERS:
            name = handler_name(handler)
            wanted = [e for e in round_ if _wants(e, name)]
            form = ROUND_FORMS.get(handler)
            if form is not None and len(wanted) > 1:
                form(session, wanted)
                continue
            for event in wanted:
                handler(session, event)
        for event in round_:
            event.failed_handlers = None
            log.info("event processed", extra={"event_id": event.id, "type": event.type})
        if recorded_events(session) != recorded_before and depth < MAX_FOLLOW_UP_DEPTH:
            follow_ups = _claim_follow_ups(session, round_)
            prepare_events(session, follow_ups, least=2)
            _apply_rounds(session, follow_ups, depth + 1)
    return len(events)


def _wants(event: Event, name: str) -> bool:
    """True when the event still needs the handler (all of them, unless a retry)."""
    return not event.failed_handlers or name in event.failed_handlers.split(",")


def _claim_follow_ups(session: Session, events: list[Event]) -> list[Event]:
    """Claim the follow-ups of ``events`` (one per contact): each contact's pending segment
    events stored after its event. SKIP LOCKED: an event another worker is claiming is
    theirs (and no lock cycle forms)."""
    after = {e.contact_id: e.id for e in events if e.contact_id is not None}
    if not after:
        return []
    candidates = session.execute(
        select(Event.id, Event.contact_id)
        .where(
            one_of(session, Event.contact_id, sorted(after)),
            Event.type.in_(FOLLOW_UP_TYPES),
            Event.processed_at.is_(None),
            Event.dead_at.is_(None),
            Event.id > min(after.values()),
        )
        .with_for_update(skip_locked=True)
    ).all()
    ids = [i for i, contact_id in candidates if contact_id in after and i > after[contact_id]]
    return _claim(session, one_of(session, Event.id, ids)) if ids else []


def _claim(session: Session, *where: Any) -> list[Event]:
    """Mark the unprocessed events matching ``where`` processed, with one UPDATE; the
    claimed events, fresh and in id order."""
    claimed = session.scalars(
        update(Event)
        .where(*where, Event.processed_at.is_(None))
        .values(processed_at=now())
        .returning(Event),
        # The rows it changes are the rows it returns, loaded over the session's copies:
        # nothing else in the session needs matching against the criteria in Python.
        execution_options={"populate_existing": True, "synchronize_session": False},
    ).all()
    return sorted(claimed, key=lambda e: e.id)


def dead_events(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    """The dead-event list, newest first: id, type, source, contact, attempts, reason."""
    rows = session.scalars(
        select(Event).where(Event.dead_at.is_not(None)).order_by(Event.dead_at.desc()).limit(limit)
    )
    return [
        {
            "id": e.id,
            "type": e.type,
            "source": e.source,
            "source_event_id": e.source_event_id,
            "contact_id": e.contact_id,
            "attempts": e.attempts,
            "dead_at": e.dead_at.isoformat() if e.dead_at else None,
            "handlers": e.failed_handlers.split(",") if e.failed_handlers else [],
            "reason": e.failure,
        }
        for e in rows
    ]


def retry_dead_events(session: Session, ids: list[int] | None) -> list[int]:
    """Make dead events (``ids``, or all when None) live again with fresh attempts.

    Only the handlers that failed run again. The ids go to the process_event queue once
    the transaction commits (or the scheduler's next pass picks them up).
    """
    query = select(Event.id).where(Event.dead_at.is_not(None)).order_by(Event.id)
    if ids is not None:
        query = query.where(Event.id.in_(ids))
    revived = list(session.scalars(query))
    if revived:
        session.execute(
            update(Event)
            .where(Event.id.in_(revived))
            .values(dead_at=None, attempts=0, processed_at=None)
            .execution_options(synchronize_session=False)
        )
        outbox.after_commit(session, "events", revived)
    return revived
