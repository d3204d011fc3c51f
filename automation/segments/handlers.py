"""process_event hook: re-evaluate every segment for the contact an event touches.

segment.* events are skipped: evaluate_contact already walks all segments in dependency
order (a segment that references another sees its fresh membership), so reacting to our
own transitions would only loop.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from automation.core.clock import now
from automation.core.models import Event
from automation.segments.membership import evaluate_contact

log = logging.getLogger(__name__)


def on_event(session: Session, event: Event) -> None:
    """Incremental segment evaluation for the event's contact."""
    if event.contact_id is None or event.type.startswith("segment."):
        return
    changes = evaluate_contact(session, event.contact_id, now())
    if changes:
        log.info(
            "segment transitions",
            extra={"contact_id": event.contact_id, "event_id": event.id, "changes": changes},
        )


# The periodic refresh of time-based segments (membership.refresh_time_based_segments) is
# the scheduler's `time_segments` task (automation/runtime/tasks.py).
