"""A round's order events upserted together (on PostgreSQL as one array per column) give
the rows the events give one at a time: new orders inserted, known ones locked and changed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.contacts.orders import apply_order_events
from automation.core.models import Contact, Event, Order

T0 = datetime(2026, 5, 3, 8, 30, tzinfo=UTC)


def _event(type_: str, contact_id: int | None, **props: Any) -> Event:
    return Event(source="shopify", source_event_id=f"{type_}:{props['order_id']}", type=type_,
                 contact_id=contact_id, occurred_at=T0, payload={"properties": props})


def test_a_batch_of_order_events_inserts_and_updates_like_single_events(
    session: Session,
) -> None:
    buyers = [Contact(email=f"b{n}@shop.vn", attributes={}, tags=[], last_inbound_at={})
              for n in range(3)]
    session.add_all(buyers)
    session.flush()
    a, b, c = (x.id for x in buyers)
    apply_order_events(session, [_event("order.created", a, order_id="o-1", total=100)])
    session.commit()
    placed = (T0 - timedelta(days=2)).isoformat()
    apply_order_events(session, [
        _event("order.paid", a, order_id="o-1", total=150),
        _event("order.created", b, order_id="o-2", total=2**40, currency="usd",
               placed_at=placed, checkout_token="chk-2"),
        _event("order.created", None, order_id=9, total=7),  # anonymous, numeric id
        _event("order.created", c, order_id="o-4", total=5),
    ])  # fmt: skip
    session.commit()
    session.expire_all()
    rows = {o.external_id: o for o in session.scalars(select(Order))}
    assert sorted(rows) == ["9", "o-1", "o-2", "o-4"]
    assert (rows["o-1"].status, rows["o-1"].total, rows["o-1"].contact_id) == ("paid", 150, a)
    o2 = rows["o-2"]
    assert (o2.total, o2.currency, o2.checkout_token, o2.contact_id) == (2**40, "USD", "chk-2", b)
    assert o2.placed_at == T0 - timedelta(days=2) and o2.placed_at.tzinfo is not None
    assert rows["9"].contact_id is None and rows["9"].placed_at == T0
    assert rows["o-4"].contact_id == c
    totals = {x.id: (x.orders_count, x.total_spent) for x in session.scalars(select(Contact))}
    assert totals == {a: (1, 150), b: (1, 2**40), c: (1, 5)}
