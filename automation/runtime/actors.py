"""Thin Dramatiq actors of the event and sequence streams: wire a queue to a domain function.

The send actors (one queue per channel family) are in automation.runtime.send_actors.
"""

from __future__ import annotations

import dramatiq

from automation.core import clock, processing
from automation.runtime.broker import actor, current_session
from automation.sequences.engine import advance_enrollment


def process_event_message(event_id: int) -> None:
    """Apply one stored event to the domain (idempotent: a processed event is skipped)."""
    processing.process_event(current_session(), event_id)


def advance_enrollment_message(enrollment_id: int) -> None:
    """Advance one enrollment as of now (its messages go to delivery after the commit)."""
    advance_enrollment(current_session(), enrollment_id, clock.now())


process_event_actor: dramatiq.Actor[[int], None] = actor(
    queue_name="events", actor_name="process_event", max_retries=5, min_backoff=1000
)(process_event_message)

advance_enrollment_actor: dramatiq.Actor[[int], None] = actor(
    queue_name="sequences", actor_name="advance_enrollment_actor", max_retries=5
)(advance_enrollment_message)
