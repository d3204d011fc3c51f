"""The scheduler's inbox pass: map webhook deliveries nobody mapped yet.

A delivery is stored and answered before it is mapped; when its queue message is lost
(Redis down or flushed, a worker killed) this pass maps it from the database and
processes the new events at once (the events pass only takes events received before
the pass began).
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.orm import Session

from automation.core.processing import process_event
from automation.inbox.worker import map_pending
from automation.runtime.scheduler import periodic

log = logging.getLogger(__name__)


@periodic("inbox", order=5)
def inbox_task(session: Session, now: datetime) -> int:
    """Map every pending inbox delivery and process its events; returns the new events."""
    new_ids = map_pending(session)
    for event_id in new_ids:
        try:
            process_event(session, event_id)
            session.commit()
        except Exception:  # noqa: BLE001 - left unprocessed: the next events pass retries
            session.rollback()
            log.exception("processing event %s failed", event_id)
    return len(new_ids)
