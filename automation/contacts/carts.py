"""Abandoned carts: a cart or checkout left without an order past CART_ABANDON_MINUTES.

``detect_abandoned_carts`` is the scheduler's ``abandoned_carts`` task: it marks each
such cart once and records and processes its ``cart.abandoned`` event (which triggers
cart recovery); a cart an order followed is marked converted instead. Carts are taken in
batches: marked and their events recorded together, then the events processed together.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.claims import each, work_in_batches
from automation.core.config import get_settings
from automation.core.eventlog import record_event
from automation.core.events import CART_ABANDONED
from automation.core.models import Cart, Order
from automation.core.processing import optimistic_batch, process_event, process_in_batch


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

    The event id is "cart:<id>:<updated_at>", so an updated cart can be abandoned again.
    Each claimed batch of carts is marked (or found converted), its events recorded and
    processed together (they trigger cart recovery) in one optimistic batch, one commit.
    If the batch fails it is redone one cart at a time, each cart's event processed at
    once (``abandon_one``), so a failure stays with its cart.
    """
    window = timedelta(minutes=get_settings().cart_abandon_minutes)
    emitted = 0

    def abandon(ids: list[int], failed: set[int]) -> int:
        nonlocal emitted
        events: list[int] = []
        done = optimistic_batch(session, lambda: _abandon_batch(session, ids, now, events))
        if done is not None:
            emitted += len(events)
            return done
        return each(session, ids, lambda cart_id: _abandon_one(cart_id), failed)

    def _abandon_one(cart_id: int) -> bool:
        nonlocal emitted
        event_id = abandon_one(session, cart_id, now)
        if event_id is not None:
            process_event(session, event_id)
            emitted += 1
        return event_id is not None

    query = (
        select(Cart.id)
        .where(
            Cart.converted_at.is_(None),
            Cart.abandoned_at.is_(None),
            Cart.contact_id.is_not(None),
            Cart.updated_at <= now - window,
        )
        .order_by(Cart.id)
    )
    work_in_batches(session, query, Cart, abandon)
    return emitted


def _abandon_batch(session: Session, ids: list[int], now: datetime, events: list[int]) -> int:
    """abandon_one for each cart of ``ids`` (in id order), then their events processed
    together in the same batch; their ids are appended to ``events``. How many carts."""
    for cart_id in ids:
        event_id = abandon_one(session, cart_id, now)
        if event_id is not None:
            events.append(event_id)
    if events:
        process_in_batch(session, events)
    return len(ids)


def abandon_one(session: Session, cart_id: int, now: datetime) -> int | None:
    """Mark the cart converted (an order followed it) or abandoned, and record its
    cart.abandoned event; the new event's id, or None (converted, gone, already done)."""
    window = timedelta(minutes=get_settings().cart_abandon_minutes)
    cart = session.get(Cart, cart_id, populate_existing=True)
    if cart is None or cart.abandoned_at is not None or cart.converted_at is not None:
        return None
    placed = _converting_order(session, cart)
    if placed is not None:
        cart.converted_at = placed
        return None
    claimed = session.execute(
        update(Cart)
        .where(Cart.id == cart_id, Cart.abandoned_at.is_(None), Cart.converted_at.is_(None))
        .values(abandoned_at=now)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return None
    event = record_event(
        session,
        CART_ABANDONED,
        cart.contact_id,
        cart_abandoned_properties(cart),
        f"cart:{cart.id}:{clock.ensure_utc(cart.updated_at).isoformat()}",
        occurred_at=cart.updated_at + window,
    )
    return event.id if event is not None else None
