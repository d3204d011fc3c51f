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

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.util import identity_key

from automation.contacts.locks import lock_contact
from automation.core import events as ev
from automation.core.clock import ensure_utc, now
from automation.core.db import dialect_insert, is_postgres
from automation.core.models import Cart, Contact, Event, Order
from automation.core.processing import batch_memo, prepare_events

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
    apply_commerce_events(session, [event])


def apply_commerce_events(session: Session, events: list[Event]) -> None:
    """apply_commerce_event for a round of events (distinct contacts, orders and carts):
    the order events together (apply_order_events), then the cart events together."""
    apply_order_events(session, [e for e in events if e.type in ev.ORDER_EVENTS])
    apply_cart_events(session, [e for e in events if e.type in ev.CART_EVENTS])


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


def _upsert_locked(session: Session, model: Any, rows: list[dict[str, Any]]) -> dict[Any, Any]:
    """The rows for (source, external_id), inserted from ``rows`` when new, locked and
    fresh, in one statement: INSERT ... ON CONFLICT DO UPDATE (a no-op) ... RETURNING.
    (source, external_id) -> row; ``rows`` name distinct ones. On PostgreSQL several
    orders travel as one array per column (unnest): the same SQL text for any number."""
    insert = dialect_insert(session)(model)
    params: list[dict[str, Any]] | None = None
    if len(rows) == 1:
        insert = insert.values(**rows[0])
    elif model is Order and is_postgres(session):
        insert = insert.from_select(list(rows[0]), _unnested(model, rows))
    else:
        params = rows
    stmt = insert.on_conflict_do_update(
        index_elements=["source", "external_id"], set_={"source": insert.excluded.source}
    ).returning(model)
    found = session.scalars(stmt, params, execution_options={"populate_existing": True}).all()
    return {(row.source, row.external_id): row for row in found}


def _unnested(model: Any, rows: list[dict[str, Any]]) -> Any:
    """SELECT * FROM unnest(:col1, :col2, ...): the rows as one array parameter per column."""
    names = list(rows[0])
    arrays = [
        bindparam(f"rows_{name}", [row[name] for row in rows],
                  type_=ARRAY(model.__table__.c[name].type))
        for name in names
    ]  # fmt: skip
    table = func.unnest(*arrays).table_valued(*names).render_derived()
    return select(*(table.c[name] for name in names))


def _order_values(event: Event, props: dict[str, Any]) -> dict[str, Any]:
    """The new Order row an order event would insert."""
    return {
        "source": event.source,
        "external_id": str(props["order_id"]),
        "contact_id": event.contact_id,
        "status": "open",
        "total": 0,
        "currency": str(props.get("currency") or "VND")[:3],
        "placed_at": _time(props.get("placed_at"), event.occurred_at),
    }


def _change_order(event: Event, props: dict[str, Any], order: Order) -> int | None:
    """Apply the event to its (locked) Order row; the contact the order belonged to."""
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
        order.placed_at = _time(props.get("placed_at"), event.occurred_at)
    if props.get("checkout_token"):
        order.checkout_token = str(props["checkout_token"])[:128]
    order.status = next_status(order.status, event.type, props, order)
    return previous_contact


def apply_order_events(session: Session, events: list[Event]) -> list[Order]:
    """Upsert the Order rows of events about distinct orders (one statement), apply each event,
    then recompute the touched contacts' rollups (one UPDATE) and mark the carts the orders
    complete (one UPDATE)."""
    wanted = [(e, _properties(e)) for e in events]
    wanted = [(e, props) for e, props in wanted if props.get("order_id")]
    for contact_id in sorted({e.contact_id for e, _ in wanted if e.contact_id is not None}):
        lock_contact(session, contact_id)  # serialise rollup work per contact
    if not wanted:
        return []
    stored = _upsert_locked(session, Order, [_order_values(e, props) for e, props in wanted])
    touched: set[int] = set()
    converting: list[Order] = []
    orders: list[Order] = []
    adopted: list[Event] = []
    for event, props in wanted:
        order: Order = stored[(event.source, str(props["order_id"]))]
        anonymous = event.contact_id is None
        previous_contact = _change_order(event, props, order)
        if anonymous and event.contact_id is not None:
            adopted.append(event)
        touched |= {c for c in (previous_contact, order.contact_id) if c is not None}
        if event.type in CONVERTING:
            converting.append(order)
        _orders_seen(session)[(event.source, order.external_id)] = order
        orders.append(order)
    session.flush()
    prepare_events(session, adopted)  # now about a contact: prepared like its events
    recompute_rollups_of(session, sorted(touched))
    mark_converted_of(session, converting)
    return orders


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


def recompute_rollups_of(session: Session, contact_ids: list[int]) -> None:
    """orders_count, total_spent, first/last_order_at of the contacts from their counted
    orders: one UPDATE with the aggregates as correlated subqueries; the loaded contacts
    get the new values without another round trip."""
    if not contact_ids:
        return
    counted = (Order.contact_id == Contact.id, Order.status.not_in(NOT_COUNTED))
    values = {
        "orders_count": select(func.count(Order.id)).where(*counted).scalar_subquery(),
        "total_spent": select(func.coalesce(func.sum(Order.total), 0))
        .where(*counted)
        .scalar_subquery(),
        "first_order_at": select(func.min(Order.placed_at)).where(*counted).scalar_subquery(),
        "last_order_at": select(func.max(Order.placed_at)).where(*counted).scalar_subquery(),
        "updated_at": now(),
    }
    rows = session.execute(
        update(Contact)
        .where(Contact.id.in_(contact_ids))
        .values(**values)
        .returning(Contact.id, *(getattr(Contact, name) for name in values))
        .execution_options(synchronize_session=False)
    ).all()
    for contact_id, *row in rows:
        contact = session.identity_map.get(identity_key(Contact, contact_id))
        if contact is None:
            continue
        for name, value in zip(values, row, strict=True):
            if isinstance(value, datetime):
                value = ensure_utc(value)
            set_committed_value(contact, name, int(value) if name in ROLLUP_INTS else value)


ROLLUP_INTS = ("orders_count", "total_spent")


def mark_converted_of(session: Session, orders: list[Order]) -> int:
    """Carts these orders complete (each order's checkout_token, and its buyer's other open
    carts), marked with one UPDATE; how many."""
    tokens: dict[str, list[str]] = {}
    for order in orders:
        if order.checkout_token:
            tokens.setdefault(order.source, []).append(order.checkout_token)
    buyers = sorted({o.contact_id for o in orders if o.contact_id is not None})
    completed = [
        and_(Cart.source == source, Cart.external_id.in_(sorted(ids)))
        for source, ids in sorted(tokens.items())
    ]
    if buyers:
        completed.append(and_(Cart.contact_id.in_(buyers), Cart.abandoned_at.is_(None)))
    if not completed:
        return 0
    result = session.execute(
        update(Cart)
        .where(Cart.converted_at.is_(None), or_(*completed))
        .values(converted_at=now())
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def apply_cart_events(session: Session, events: list[Event]) -> list[Cart]:
    """Upsert the Cart rows of events about distinct carts (one statement); a converted cart
    stays converted."""
    wanted = [(e, _properties(e)) for e in events]
    wanted = [(e, props) for e, props in wanted if props.get("cart_id")]
    if not wanted:
        return []
    rows: list[dict[str, Any]] = [
        {
            "source": event.source,
            "external_id": str(props["cart_id"])[:128],
            "contact_id": event.contact_id,
            "total": 0,
            "items": [],
            "updated_at": event.occurred_at,
        }
        for event, props in wanted
    ]
    stored = _upsert_locked(session, Cart, rows)
    carts: list[Cart] = []
    for event, props in wanted:
        cart: Cart = stored[(event.source, str(props["cart_id"])[:128])]
        _change_cart(event, props, cart)
        carts.append(cart)
    session.flush()
    return carts


def _change_cart(event: Event, props: dict[str, Any], cart: Cart) -> None:
    """Apply the cart event to its (locked) Cart row."""
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
