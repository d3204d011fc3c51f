"""Split a batch of events into rounds that a set-based handler can take together.

Within one round no two events share a key: the contact, the order, the cart (an order's
checkout token names its cart). Each key's events keep their order across rounds, so
running every handler for a whole round, round after round, gives each contact, order
and cart the same sequence of changes as processing the events one at a time.
"""

from __future__ import annotations

from typing import Any

from automation.core.models import Event


def event_keys(event: Event) -> set[tuple[Any, ...]]:
    """What the event's handlers may change: its contact, its order and its cart."""
    keys: set[tuple[Any, ...]] = {("contact", event.contact_id)}
    payload = event.payload if isinstance(event.payload, dict) else {}
    props = payload.get("properties")
    if isinstance(props, dict):
        for name in ("order_id", "cart_id", "checkout_token"):
            value = props.get(name)
            if value:
                kind = "order" if name == "order_id" else "cart"
                keys.add((kind, event.source, str(value)[:128]))
    return keys


def split_rounds(events: list[Event]) -> list[list[Event]]:
    """``events`` (in processing order) as rounds: each event goes to the round after the
    last one holding any of its keys."""
    rounds: list[list[Event]] = []
    last: dict[tuple[Any, ...], int] = {}
    for event in events:
        keys = event_keys(event)
        index = max((last[k] + 1 for k in keys if k in last), default=0)
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(event)
        for key in keys:
            last[key] = index
    return rounds
