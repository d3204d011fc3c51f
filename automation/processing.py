"""process_event: apply one stored event to the domain, exactly once."""

from __future__ import annotations

import logging
from collections.abc import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from automation.clock import now
from automation.models import Event

log = logging.getLogger(__name__)

EventHandler = Callable[[Session, Event], None]
HANDLERS: list[EventHandler] = []


def handles(fn: EventHandler) -> EventHandler:
    """Register a function called for every processed event, in registration order."""
    HANDLERS.append(fn)
    return fn


def process_event(session: Session, event_id: int) -> bool:
    """Run every handler for the event once; returns False if it was already processed."""
    claimed = session.execute(
        update(Event)
        .where(Event.id == event_id, Event.processed_at.is_(None))
        .values(processed_at=now())
    )
    if claimed.rowcount == 0:  # type: ignore[attr-defined]
        return False
    event = session.get(Event, event_id)
    assert event is not None
    for handler in HANDLERS:
        handler(session, event)
    log.info("event processed", extra={"event_id": event_id, "type": event.type})
    return True


def unprocessed_event_ids(
    session: Session, older_than_seconds: int, limit: int = 1000
) -> list[int]:
    """Events whose processing message was lost (Redis flush, crash) and must be re-sent."""
    from datetime import timedelta

    cutoff = now() - timedelta(seconds=older_than_seconds)
    rows = session.scalars(
        select(Event.id)
        .where(Event.processed_at.is_(None), Event.received_at < cutoff)
        .order_by(Event.id)
        .limit(limit)
    )
    return list(rows)
