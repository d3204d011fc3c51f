"""Map stored deliveries into events: one at a time (actor), pending ones (scheduler), replay.

Mapping is total: a delivery whose payload cannot be mapped ends `quarantined` with the
reason at once; one whose events cannot be stored (a value the database refuses) is tried
MAX_ATTEMPTS times, then quarantined. Only an unreachable or locked database
(OperationalError) leaves it pending, for the next pass.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from automation.core.clock import now
from automation.core.db import is_postgres
from automation.core.models_inbox import InboxDelivery
from automation.core.processing import process_event
from automation.inbox import IGNORED, MAPPED, PENDING, QUARANTINED
from automation.inbox.callbacks import SOURCES as CALLBACK_SOURCES
from automation.inbox.callbacks import apply_stored
from automation.inbox.mapping import stored_events
from automation.inbox.record import writer
from automation.inbox.store import store_events
from automation.ingest.sources.base import Ignored, PayloadError

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 3
BATCH = 500


def settle(row: InboxDelivery, status: str, reason: str | None) -> None:
    """Record the outcome of a mapping attempt on the row."""
    row.status, row.reason = status, reason
    row.mapped_at = now() if status == MAPPED else None


def map_delivery(session: Session, inbox_id: int) -> list[int]:
    """Map one pending delivery in the session's transaction; returns new event ids.

    A shop delivery becomes events; a provider callback's results are applied to its
    messages and contacts (automation.inbox.callbacks).

    A row that is not pending (or, on PostgreSQL, locked by another mapper) is skipped.
    Database errors propagate; the caller commits.
    """
    query = select(InboxDelivery).where(
        InboxDelivery.id == inbox_id, InboxDelivery.status == PENDING
    )
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    row = session.scalars(query).one_or_none()
    if row is None:
        return []
    row.attempts += 1
    if row.source in CALLBACK_SOURCES:  # a provider callback: apply its results
        status, reason, event_ids = apply_stored(session, row)
        settle(row, status, reason)
        return event_ids
    try:
        events = stored_events(row.source, row.topic, row.dedupe_key, row.body, row.headers or {})
    except Ignored as exc:
        settle(row, IGNORED, str(exc))
        return []
    except PayloadError as exc:
        settle(row, QUARANTINED, str(exc))
        return []
    except Exception as exc:  # noqa: BLE001 - pure mapping: any failure is the payload's
        settle(row, QUARANTINED, f"cannot map: {type(exc).__name__}")
        return []
    result = store_events(session, row.source, events)
    settle(row, MAPPED, None)
    return result.new_ids


def map_and_commit(session: Session, inbox_id: int) -> list[int]:
    """map_delivery in its own committed transaction, retried on a race, then quarantined."""
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            with writer(session):
                new_ids = map_delivery(session, inbox_id)
                session.commit()
            return new_ids
        except OperationalError:
            session.rollback()
            raise
        except IntegrityError:  # a concurrent writer created the same contact: try again
            session.rollback()
            if attempt < MAX_ATTEMPTS:
                continue
            failure = "store failed: IntegrityError (retried)"
        except Exception as exc:  # noqa: BLE001 - a value the database refuses: quarantine
            session.rollback()
            failure = f"store failed: {type(exc).__name__}: {short(exc)}"
        break
    with writer(session):
        session.execute(
            update(InboxDelivery)
            .where(InboxDelivery.id == inbox_id, InboxDelivery.status == PENDING)
            .values(status=QUARANTINED, reason=failure,
                    attempts=InboxDelivery.attempts + 1)
        )
        session.commit()
    log.warning("inbox delivery quarantined", extra={"inbox_id": inbox_id, "reason": failure})
    return []


def short(exc: Exception) -> str:
    """The driver's first message line (no SQL, no parameters), at most 200 characters."""
    origin = getattr(exc, "orig", None) or exc
    lines = str(origin).strip().splitlines()
    return (lines[0] if lines else type(origin).__name__)[:200]


def pending_ids(session: Session, limit: int = BATCH, after: int = 0) -> list[int]:
    """Ids of deliveries waiting to be mapped, oldest first."""
    return list(
        session.scalars(
            select(InboxDelivery.id)
            .where(InboxDelivery.status == PENDING, InboxDelivery.id > after)
            .order_by(InboxDelivery.id)
            .limit(limit)
        )
    )


def map_pending(session: Session, limit: int = 100 * BATCH) -> list[int]:
    """Map every pending delivery (the scheduler's pass); returns the new event ids."""
    new_ids: list[int] = []
    after, seen = 0, 0
    while seen < limit:
        ids = pending_ids(session, BATCH, after)
        session.rollback()  # end the read; each delivery commits on its own
        if not ids:
            break
        for inbox_id in ids:
            new_ids += map_and_commit(session, inbox_id)
        after, seen = ids[-1], seen + len(ids)
    return new_ids


@dataclass
class Replayed:
    """What `replay` did: deliveries re-mapped, new events, and ids left as they were."""

    mapped: list[int] = field(default_factory=list)
    quarantined: list[int] = field(default_factory=list)
    ignored: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    event_ids: list[int] = field(default_factory=list)


def replay(session: Session, ids: list[int] | None) -> Replayed:
    """Map quarantined (or given) deliveries again; mapped ones are left alone (idempotent).

    ids=None replays every quarantined delivery; given ids may also be ignored ones.
    A replayed delivery whose events were stored before adds none (deduped on their key).
    """
    statuses = (QUARANTINED,) if ids is None else (QUARANTINED, PENDING, IGNORED)
    query = select(InboxDelivery.id).where(InboxDelivery.status.in_(statuses))
    if ids is not None:
        query = query.where(InboxDelivery.id.in_(ids))
    chosen = list(session.scalars(query.order_by(InboxDelivery.id)))
    with writer(session):
        if chosen:
            session.execute(
                update(InboxDelivery).where(InboxDelivery.id.in_(chosen))
                .values(status=PENDING, reason=None, attempts=0)
            )
        session.commit()
    result = Replayed(skipped=sorted(set(ids or []) - set(chosen)))
    for inbox_id in chosen:
        result.event_ids += map_and_commit(session, inbox_id)
        status = session.scalar(select(InboxDelivery.status).where(InboxDelivery.id == inbox_id))
        session.rollback()
        {MAPPED: result.mapped, IGNORED: result.ignored}.get(
            status or "", result.quarantined).append(inbox_id)
    return result


def listing(
    session: Session, status: str | None = None, source: str | None = None, limit: int = 100
) -> list[InboxDelivery]:
    """Deliveries, newest first, filtered by status and source."""
    query = select(InboxDelivery).order_by(InboxDelivery.id.desc()).limit(limit)
    if status:
        query = query.where(InboxDelivery.status == status)
    if source:
        query = query.where(InboxDelivery.source == source)
    return list(session.scalars(query))


def inbox_task(session: Session, now: datetime) -> int:
    """Scheduler pass: map every pending delivery (its queue message was lost) and process
    its events at once (the events pass only takes events received before the pass began).
    """
    new_ids = map_pending(session)
    for event_id in new_ids:
        try:
            process_event(session, event_id)
            session.commit()
        except Exception:  # noqa: BLE001 - left unprocessed: the next events pass retries
            session.rollback()
            log.exception("processing event %s failed", event_id)
    return len(new_ids)
