"""Thin Dramatiq actors: wire queue messages to the functions that do the work."""

from __future__ import annotations

import dramatiq

import automation.runtime.handlers  # noqa: F401  registers every process_event handler
from automation.core import processing
from automation.inbox.worker import map_and_commit
from automation.runtime.broker import actor, current_session


def process_event_message(event_id: int) -> None:
    """Apply one stored event to the domain (idempotent: a processed event is skipped)."""
    processing.process_event(current_session(), event_id)


process_event_actor: dramatiq.Actor[[int], None] = actor(
    queue_name="events", actor_name="process_event", max_retries=5, min_backoff=1000
)(process_event_message)


def map_inbox_message(inbox_ids: list[int]) -> None:
    """Map stored webhook deliveries into events (each committed), then queue processing."""
    session = current_session()
    for inbox_id in inbox_ids:
        for event_id in map_and_commit(session, inbox_id):
            process_event_actor.send(event_id)


map_inbox_actor: dramatiq.Actor[[list[int]], None] = actor(
    queue_name="events", actor_name="map_inbox", max_retries=5, min_backoff=1000
)(map_inbox_message)

# Delivery stream: the per-channel send queues (send_email, send_sms, send_zalo, send_messenger).
from automation.runtime import send_actors as _delivery_actors  # noqa: E402,F401
