"""Thin Dramatiq actors of the event and sequence streams: wire a queue to a domain function.

The send actors (one queue per channel family) are in automation.runtime.send_actors.
"""

from __future__ import annotations

import dramatiq

from automation.core import clock, processing
from automation.inbox.worker import map_and_commit
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

def map_inbox_message(inbox_ids: list[int]) -> None:
    """Map stored webhook deliveries into events (each committed), then queue processing."""
    session = current_session()
    for inbox_id in inbox_ids:
        for event_id in map_and_commit(session, inbox_id):
            process_event_actor.send(event_id)


map_inbox_actor: dramatiq.Actor[[list[int]], None] = actor(
    queue_name="events", actor_name="map_inbox", max_retries=5, min_backoff=1000
)(map_inbox_message)

