"""Abandoned carts: a cart or checkout left without an order past CART_ABANDON_MINUTES.

``detect_abandoned_carts`` is the scheduler's ``abandoned_carts`` task: it marks each
such cart once and records and processes its ``cart.abandoned`` event (which triggers
cart recovery); a cart an order followed is marked converted instead.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.claims import work_through
from automation.core.config import get_settings
from automation.core.eventlog import record_event
from automation.core.events import CART_ABANDONED
from automation.core.models import Cart, Order
from automation.core.processing import process_event


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
    emitted = 0

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
    work_through(session, query, Cart, handle)
    return emitted
