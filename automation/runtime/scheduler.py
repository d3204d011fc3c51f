"""The periodic pass: everything the database says is due, done from database state.

``run_pass(session_factory, now)`` runs every task registered with ``@periodic(name)``
in order, each in its own session and transaction(s), and returns {name: count}. It is
safe to run in several processes at once: work is claimed with ``FOR UPDATE SKIP LOCKED``
on PostgreSQL; on SQLite writers are serialised and every claim is re-checked.

Built-in tasks (order):
   5 inbox            (automation.runtime.inbox_tasks) map webhook deliveries left pending
  10 events           process stored events nobody processed yet, inline
  20 abandoned_carts  carts with no order within CART_ABANDON_MINUTES -> cart.abandoned once
  30 time_segments    segments whose rules depend on time (segments stream), then events
  40 due_enrollments  enrollments whose next_run_at has come
  50 stale_outbox     (automation.delivery.stale) stuck queued/sending/deferred rows re-sent
1000 events_after     events emitted by any task above (segment transitions...), inline
Other modules register more tasks (or replace one by registering the same name); they
are listed in TASK_MODULES or imported by automation.runtime.handlers.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, and_, or_, select, update
from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.config import get_settings
from automation.core.events import CART_ABANDONED
from automation.core.models import Cart, Enrollment, Event, Order, Sequence
from automation.core.processing import process_event
from automation.sequences.engine import RUNNING, pending_message_ids, try_advance

log = logging.getLogger(__name__)

PeriodicTask = Callable[[Session, datetime], int]
TASK_MODULES = (
    "automation.runtime.handlers",
    "automation.delivery.scheduled",
    "automation.runtime.inbox_tasks",
)
BATCH = 200
MAX_BATCHES = 100


@dataclass(frozen=True)
class _Task:
    name: str
    fn: PeriodicTask
    order: int


TASKS: dict[str, _Task] = {}


def periodic(name: str, order: int = 100) -> Callable[[PeriodicTask], PeriodicTask]:
    """Register ``fn(session, now) -> int`` as a scheduler task (same name replaces)."""

    def register(fn: PeriodicTask) -> PeriodicTask:
        if name in TASKS:
            log.info("scheduler task %s replaced by %s", name, fn.__qualname__)
        TASKS[name] = _Task(name, fn, order)
        return fn

    return register


def load_task_modules() -> None:
    """Import the modules that register handlers and periodic tasks (after this one loads)."""
    for module_name in TASK_MODULES:
        importlib.import_module(module_name)


def run_pass(session_factory: Callable[[], Session], now: datetime | None = None) -> dict[str, int]:
    """Run every registered task once as of ``now``; {task: count}, -1 for a failed task."""
    load_task_modules()
    when = clock.ensure_utc(now) if now is not None else clock.now()
    results: dict[str, int] = {}
    for task in sorted(TASKS.values(), key=lambda t: (t.order, t.name)):
        session = session_factory()
        try:
            results[task.name] = int(task.fn(session, when))
            session.commit()
        except Exception:  # noqa: BLE001 - one broken task must not stop the others
            session.rollback()
            log.exception("scheduler task %s failed", task.name)
            results[task.name] = -1
        finally:
            session.close()
    return results


# --------------------------------------------------------------------------- helpers


def _is_postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _claim(session: Session, query: Select[Any], of: Any) -> list[int]:
    """Ids from ``query``; on PostgreSQL locked FOR UPDATE SKIP LOCKED (another pass skips)."""
    if _is_postgres(session):
        query = query.with_for_update(skip_locked=True, of=of)
    return list(session.scalars(query))


def _each(
    session: Session, ids: Iterable[int], work: Callable[[int], Any], failed: set[int]
) -> int:
    """Run ``work(id)`` per id, isolating failures; commits; counts results not None/False.

    PostgreSQL: one savepoint per item and one commit per batch (claims stay locked).
    SQLite: one transaction per item (its driver's savepoints are not reliable).
    """
    done = 0
    postgres = _is_postgres(session)
    for item in ids:
        pending = pending_message_ids(session)
        mark = len(pending)
        try:
            if postgres:
                with session.begin_nested():
                    result = work(item)
            else:
                result = work(item)
                session.commit()
            done += 0 if result is None or result is False else 1
        except Exception:  # noqa: BLE001 - retried at the next pass
            if postgres:
                del pending[mark:]
            else:
                session.rollback()
            failed.add(item)
            log.exception("scheduler item %s failed", item)
    session.commit()
    return done


# --------------------------------------------------------------------------- events


def process_pending_events(session: Session, now: datetime) -> int:
    """Process, inline, every stored event received by ``now`` that is not processed yet."""
    total = 0
    failed: set[int] = set()
    for _ in range(MAX_BATCHES):
        query = (
            select(Event.id)
            .where(Event.processed_at.is_(None), Event.received_at <= now)
            .order_by(Event.id)
            .limit(BATCH)
        )
        if failed:
            query = query.where(Event.id.not_in(failed))
        ids = _claim(session, query, Event)
        if not ids:
            break
        total += _each(session, ids, lambda event_id: process_event(session, event_id), failed)
    return total


@periodic("events", order=10)
def events_task(session: Session, now: datetime) -> int:
    """Process events whose processing message was lost or never sent (inline)."""
    return process_pending_events(session, now)


@periodic("events_after", order=1000)
def events_after_task(session: Session, now: datetime) -> int:
    """Process events that other tasks of this pass emitted, so one pass is complete."""
    return process_pending_events(session, now)


# --------------------------------------------------------------------------- carts


def cart_abandoned_properties(cart: Cart) -> dict[str, Any]:
    """The cart.abandoned event properties (what cart_recovery templates show)."""
    return {
        "cart_id": cart.external_id,
        "source": cart.source,
        "total": cart.total,
        "currency": "VND",
        "items": list(cart.items or []),
        "recovery_url": cart.recovery_url,
    }


def _converting_order(session: Session, cart: Cart) -> datetime | None:
    """placed_at of an order that followed the cart (same contact or checkout token)."""
    placed: datetime | None = session.scalar(
        select(Order.placed_at)
        .where(
            or_(
                and_(Order.contact_id == cart.contact_id, Order.placed_at >= cart.updated_at),
                Order.checkout_token == cart.external_id,
            )
        )
        .order_by(Order.placed_at)
        .limit(1)
    )
    return placed


def detect_abandoned_carts(session: Session, now: datetime) -> int:
    """Emit cart.abandoned once per cart left without an order past the window; returns count.

    The event id is "cart:<id>:<updated_at>", so an updated cart can be abandoned again,
    and the event is processed at once (triggers cart recovery).
    """
    window = timedelta(minutes=get_settings().cart_abandon_minutes)
    from automation.core.eventlog import record_event

    emitted = 0
    failed: set[int] = set()

    def handle(cart_id: int) -> None:
        nonlocal emitted
        cart = session.get(Cart, cart_id, populate_existing=True)
        if cart is None or cart.abandoned_at is not None or cart.converted_at is not None:
            return
        placed = _converting_order(session, cart)
        if placed is not None:
            cart.converted_at = placed
            return
        claimed = session.execute(
            update(Cart)
            .where(Cart.id == cart_id, Cart.abandoned_at.is_(None), Cart.converted_at.is_(None))
            .values(abandoned_at=now)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            return
        event = record_event(
            session,
            CART_ABANDONED,
            cart.contact_id,
            cart_abandoned_properties(cart),
            f"cart:{cart.id}:{clock.ensure_utc(cart.updated_at).isoformat()}",
            occurred_at=cart.updated_at + window,
        )
        if event is not None:
            process_event(session, event.id)
            emitted += 1

    for _ in range(MAX_BATCHES):
        query = (
            select(Cart.id)
            .where(
                Cart.converted_at.is_(None),
                Cart.abandoned_at.is_(None),
                Cart.contact_id.is_not(None),
                Cart.updated_at <= now - window,
            )
            .order_by(Cart.id)
            .limit(BATCH)
        )
        if failed:
            query = query.where(Cart.id.not_in(failed))
        ids = _claim(session, query, Cart)
        if not ids:
            break
        _each(session, ids, handle, failed)
    return emitted


@periodic("abandoned_carts", order=20)
def abandoned_carts_task(session: Session, now: datetime) -> int:
    """Detect abandoned carts (see detect_abandoned_carts)."""
    return detect_abandoned_carts(session, now)


# --------------------------------------------------------------------------- segments


@periodic("time_segments", order=30)
def time_segments_task(session: Session, now: datetime) -> int:
    """Refresh segments whose rules depend on time, then process their entered/exited events."""
    from automation.segments.membership import refresh_time_based_segments

    changes = refresh_time_based_segments(session, now)
    session.commit()
    process_pending_events(session, now)
    return changes


# --------------------------------------------------------------------------- enrollments


def run_due_enrollments(session: Session, now: datetime) -> int:
    """Advance every enrollment due by ``now`` (active sequences only); returns how many."""
    total = 0
    failed: set[int] = set()
    for _ in range(MAX_BATCHES):
        query = (
            select(Enrollment.id)
            .join(Sequence, Sequence.id == Enrollment.sequence_id)
            .where(
                Enrollment.state.in_(RUNNING),
                Enrollment.next_run_at <= now,
                Sequence.status == "active",
            )
            .order_by(Enrollment.next_run_at, Enrollment.id)
            .limit(BATCH)
        )
        if failed:
            query = query.where(Enrollment.id.not_in(failed))
        ids = _claim(session, query, Enrollment)
        if not ids:
            break
        total += _each(session, ids, lambda eid: try_advance(session, eid, now), failed)
    return total


@periodic("due_enrollments", order=40)
def due_enrollments_task(session: Session, now: datetime) -> int:
    """Advance due enrollments (waits elapsed, wait_until timeouts)."""
    return run_due_enrollments(session, now)
