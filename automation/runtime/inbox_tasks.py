"""The scheduler's inbox pass: map webhook deliveries nobody mapped yet.

A delivery is stored and answered before it is mapped; when its queue message is lost
(Redis down or flushed, a worker killed) this pass maps it from the database, before
the events pass processes what it produced.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from automation.inbox.worker import map_pending
from automation.runtime.scheduler import periodic


@periodic("inbox", order=5)
def inbox_task(session: Session, now: datetime) -> int:
    """Map every pending inbox delivery; returns the number of new events."""
    return len(map_pending(session))
