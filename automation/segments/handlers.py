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
from automation.segments.membership import evaluate_contacts

log = logging.getLogger(__name__)


def on_event(session: Session, event: Event) -> None:
    """Incremental segment evaluation for the event's contact."""
    on_events(session, [event])


def on_events(session: Session, events: list[Event]) -> None:
    """on_event for a round of events (one per contact): one facts query for all."""
    wanted = {e.contact_id: e for e in events
              if e.contact_id is not None and not e.type.startswith("segment.")}  # fmt: skip
    if not wanted:
        return
    for contact_id, changes in evaluate_contacts(session, list(wanted), now()).items():
        log.info(
            "segment transitions",
            extra={"contact_id": contact_id, "event_id": wanted[contact_id].id, "changes": changes},
        )


# The periodic refresh of time-based segments (membership.refresh_time_based_segments) is
# the scheduler's `time_segments` task (automation/runtime/tasks.py).
