"""process_event: apply one stored event to the domain, exactly once.

``process_pending_events`` is the scheduler's catch-up: every stored event nobody
processed yet (its queue message was lost, or a task of the pass just emitted it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from automation.core.claims import work_through
from automation.core.clock import now
from automation.core.models import Event

log = logging.getLogger(__name__)

EventHandler = Callable[[Session, Event], None]
#: Called for every processed event, in order; the runtime installs its table at startup.
HANDLERS: list[EventHandler] = []
MAX_FOLLOW_UP_DEPTH = 3
FOLLOW_UP_TYPES = ("segment.entered", "segment.exited")


def use_handlers(handlers: Iterable[EventHandler]) -> None:
    """Make ``handlers`` (in this order) the functions called for every processed event."""
    HANDLERS[:] = list(handlers)


def process_event(session: Session, event_id: int, _depth: int = 0) -> bool:
    """Run every handler for the event once; returns False if it was already processed.

    Internal events the handlers record for the same contact (segment.entered / exited)
    are processed right after, in the same transaction, so a sequence triggered by a
    segment entry starts now rather than at the next scheduler pass.
    """
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
    if event.contact_id is not None and _depth < MAX_FOLLOW_UP_DEPTH:
        for follow_up in _follow_ups(session, event):
            process_event(session, follow_up, _depth + 1)
    return True


def _follow_ups(session: Session, event: Event) -> list[int]:
    # SKIP LOCKED: an event another worker is claiming is theirs (and no lock cycle forms).
    return list(
        session.scalars(
            select(Event.id)
            .where(
                Event.contact_id == event.contact_id,
                Event.type.in_(FOLLOW_UP_TYPES),
                Event.processed_at.is_(None),
                Event.id > event.id,
            )
            .order_by(Event.id)
            .with_for_update(skip_locked=True)
        )
    )


def process_pending_events(session: Session, at: datetime) -> int:
    """Process, inline, every stored event received by ``at`` that is not processed yet."""
    query = (
        select(Event.id)
        .where(Event.processed_at.is_(None), Event.received_at <= at)
        .order_by(Event.id)
    )
    return work_through(session, query, Event, lambda event_id: process_event(session, event_id))
