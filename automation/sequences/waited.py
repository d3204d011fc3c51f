"""The shop events wait_until steps look for, read once per event batch for its contacts.

A wait_until step asks for the contact's events of one type (``order.paid`` after
``order.created``). In an event batch, ``note_waited_events`` (a batch preparation step)
reads the batch contacts' stored events of every shop type some sequence waits for, in
one query; ``waited_events`` then answers from them. Only shop events are kept: they are
stored by ingest, never by a handler inside the batch (a concurrent webhook is seen by
its own processing, which waits for the batch's contact locks and wakes the wait).
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.events import SHOP_EVENTS
from automation.core.models import Event
from automation.core.processing import batch_memo, in_batch
from automation.sequences.store import waited_types

_KEY = "sequences.waited_events"


def _known(session: Session) -> dict[int, list[Event]]:
    known: dict[int, list[Event]] = batch_memo(session, _KEY, dict)
    return known


def note_waited_events(session: Session, events: list[Event]) -> None:
    """Event batch preparation: the events' contacts' shop events of the waited types
    (one query for the contacts not read yet; an event seen again is added to its own)."""
    types = sorted(waited_types(session) & set(SHOP_EVENTS))
    if not types:
        return
    known = _known(session)
    for event in events:  # re-prepared: an event a handler gave its contact
        held = known.get(event.contact_id) if event.contact_id is not None else None
        if held is not None and event.type in types and event not in held:
            held.append(event)
            held.sort(key=lambda e: (e.occurred_at, e.id))
    contacts = sorted({e.contact_id for e in events if e.contact_id is not None} - known.keys())
    if not contacts:
        return
    for contact_id in contacts:
        known[contact_id] = []
    for event in session.scalars(
        select(Event)
        .where(Event.contact_id.in_(contacts), Event.type.in_(types))
        .order_by(Event.occurred_at, Event.id)
    ):
        known[event.contact_id or 0].append(event)


def waited_events(session: Session, contact_id: int, event_type: str) -> list[Event] | None:
    """The contact's stored events of the type, oldest first, when this event batch read
    them up front; None when it did not (ask the database)."""
    if event_type not in SHOP_EVENTS or not in_batch(session):
        return None
    held = _known(session).get(contact_id)
    if held is None:
        return None
    return [e for e in held if e.type == event_type]
