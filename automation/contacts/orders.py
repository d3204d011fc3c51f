"""Orders and carts from events; contact rollups recomputed from the orders table.

An order is one row per (source, external order id), so the same order reported twice
counts once. Rollups (orders_count, total_spent, first/last_order_at) are recomputed
from the rows whose status is not cancelled or refunded, so a cancel or a full refund
takes the order back. Totals are integers in the shop currency's smallest unit (VND:
dong). An order counts from the moment it is placed (cash on delivery is common in
Vietnam, so payment is not required).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from automation.contacts.locks import lock_contact
from automation.core import events as ev
from automation.core.clock import ensure_utc, now
from automation.core.db import dialect_insert
from automation.core.models import Cart, Contact, Event, Order
from automation.core.processing import batch_memo

STATUS = {
    ev.ORDER_CREATED: "open",
    ev.ORDER_PAID: "paid",
    ev.ORDER_SHIPPED: "shipped",
    ev.ORDER_DELIVERED: "delivered",
    ev.ORDER_CANCELLED: "cancelled",
    ev.ORDER_REFUNDED: "refunded",
}
RANK = {"open": 0, "paid": 1, "shipped": 2, "delivered": 3}
NOT_COUNTED = ("cancelled", "refunded")
CONVERTING = (ev.ORDER_CREATED, ev.ORDER_PAID)


def apply_commerce_event(session: Session, event: Event) -> None:
    """process_event handler: order events -> Order + rollups; cart events -> Cart."""
    if event.type in ev.ORDER_EVENTS:
        apply_order_event(session, event)
    elif event.type in ev.CART_EVENTS:
        apply_cart_event(session, event)


def _properties(event: Event) -> dict[str, Any]:
    payload = event.payload or {}
    props = payload.get("properties")
    return props if isinstance(props, dict) else {}


def _time(value: Any, default: datetime) -> datetime:
    if isinstance(value, str) and value:
        try:
            return ensure_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        except ValueError:
            return default
    return default


def _upsert_locked(session: Session, model: Any, values: dict[str, Any]) -> Any:
    """The row for (source, external_id), inserted from ``values`` when new, locked and
    fresh, in one statement: INSERT ... ON CONFLICT DO UPDATE (a no-op) ... RETURNING."""
    insert = dialect_insert(session)(model).values(**values)
    stmt = insert.on_conflict_do_update(
        index_elements=["source", "external_id"], set_={"source": insert.excluded.source}
    ).returning(model)
    return session.scalars(stmt, execution_options={"populate_existing": True}).one()


def apply_order_event(session: Session, event: Event) -> Order | None:
    """Upsert the Order row for the event, then recompute the affected contacts' rollups."""
    props = _properties(event)
    order_id = props.get("order_id")
    if not order_id:
        return None
    external_id = str(order_id)
    if event.contact_id is not None:
        lock_contact(session, event.contact_id)  # serialise rollup work per contact
    placed = _time(props.get("placed_at"), event.occurred_at)
    order: Order = _upsert_locked(
        session,
        Order,
        {
            "source": event.source,
            "external_id": external_id,
            "contact_id": event.contact_id,
            "status": "open",
            "total": 0,
            "currency": str(props.get("currency") or "VND")[:3],
            "placed_at": placed,
        },
    )
    previous_contact = order.contact_id
    if event.contact_id is not None:
        order.contact_id = event.contact_id
    elif order.contact_id is not None:
        event.contact_id = order.contact_id  # later handlers see who the event is about
    total = props.get("total")
    if isinstance(total, int) and not isinstance(total, bool):
        order.total = max(total, 0)
    if props.get("currency"):
        order.currency = str(props["currency"])[:3].upper()
    if props.get("placed_at"):
        order.placed_at = placed
    if props.get("checkout_token"):
        order.checkout_token = str(props["checkout_token"])[:128]
    order.status = next_status(order.status, event.type, props, order)
    session.flush()
    for contact_id in {previous_contact, order.contact_id} - {None}:
        assert contact_id is not None
        recompute_rollups(session, contact_id)
    if event.type in CONVERTING:
        mark_converted(session, event.source, order)
    _orders_seen(session)[(event.source, external_id)] = order
    return order


def _orders_seen(session: Session) -> dict[tuple[str, str], Order]:
    seen: dict[tuple[str, str], Order] = batch_memo(session, "orders", dict)
    return seen


def stored_order(session: Session, source: str, external_id: str) -> Order | None:
    """The Order row for (source, external id): the one this event batch just wrote, or
    from the database."""
    order = _orders_seen(session).get((source, external_id))
    if order is not None:
        return order
    return session.scalar(
        select(Order).where(Order.source == source, Order.external_id == external_id)
    )


def next_status(current: str, type_: str, props: dict[str, Any], order: Order) -> str:
    """Status moves forward only; cancel and full refund win; a partial refund lowers the total."""
    target = STATUS.get(type_, current)
    if type_ == ev.ORDER_REFUNDED:
        amount = props.get("refund_amount")
        if isinstance(amount, int) and not isinstance(amount, bool) and amount < order.total:
            order.total -= max(amount, 0)
            return current
        return "refunded"
    if target in NOT_COUNTED:
        return target
    if current in NOT_COUNTED:
        return current
    return target if RANK.get(target, 0) >= RANK.get(current, 0) else current


def recompute_rollups(session: Session, contact_id: int) -> None:
    """orders_count, total_spent, first/last_order_at from the contact's counted orders.

    One UPDATE with the aggregates as subqueries; the loaded contact (if any) gets the
    new values without another round trip.
    """
    counted = (Order.contact_id == contact_id, Order.status.not_in(NOT_COUNTED))
    values = {
        "orders_count": select(func.count(Order.id)).where(*counted).scalar_subquery(),
        "total_spent": select(func.coalesce(func.sum(Order.total), 0))
        .where(*counted)
        .scalar_subquery(),
        "first_order_at": select(func.min(Order.placed_at)).where(*counted).scalar_subquery(),
        "last_order_at": select(func.max(Order.placed_at)).where(*counted).scalar_subquery(),
        "updated_at": now(),
    }
    row = session.execute(
        update(Contact)
        .where(Contact.id == contact_id)
        .values(**values)
        .returning(*(getattr(Contact, name) for name in values))
        .execution_options(synchronize_session=False)
    ).first()
    contact = session.identity_map.get(identity_key(Contact, contact_id))
    if row is None or contact is None:
        return
    for name, value in zip(values, row, strict=True):
        if isinstance(value, datetime):
            value = ensure_utc(value)
        set_committed_value(contact, name, int(value) if name in ROLLUP_INTS else value)


ROLLUP_INTS = ("orders_count", "total_spent")


def mark_converted(session: Session, source: str, order: Order) -> int:
    """Carts this order completes: its checkout_token, and the buyer's other open carts."""
    completed = []
    if order.checkout_token:
        completed.append(and_(Cart.source == source, Cart.external_id == order.checkout_token))
    if order.contact_id is not None:
        completed.append(and_(Cart.contact_id == order.contact_id, Cart.abandoned_at.is_(None)))
    if not completed:
        return 0
    result = session.execute(
        update(Cart)
        .where(Cart.converted_at.is_(None), or_(*completed))
        .values(converted_at=now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def apply_cart_event(session: Session, event: Event) -> Cart | None:
    """Upsert the Cart row (checkout.started / cart.updated); a converted cart stays converted."""
    props = _properties(event)
    cart_id = props.get("cart_id")
    if not cart_id:
        return None
    cart: Cart = _upsert_locked(
        session,
        Cart,
        {
            "source": event.source,
            "external_id": str(cart_id)[:128],
            "contact_id": event.contact_id,
            "total": 0,
            "items": [],
            "updated_at": event.occurred_at,
        },
    )
    if event.contact_id is not None:
        cart.contact_id = event.contact_id
    total = props.get("total")
    if isinstance(total, int) and not isinstance(total, bool):
        cart.total = max(total, 0)
    items = props.get("items")
    if isinstance(items, list):
        cart.items = items
    if props.get("recovery_url"):
        cart.recovery_url = str(props["recovery_url"])
    if ensure_utc(event.occurred_at) >= ensure_utc(cart.updated_at):
        cart.updated_at = event.occurred_at
    session.flush()
    return cart
