"""Thin Dramatiq actors: wire queue messages to the functions that do the work."""

from __future__ import annotations

import importlib

import dramatiq

from automation import processing
from automation.broker import actor, current_session

for _module in ("automation.handlers", "automation.orders"):
    try:  # register every process_event handler in the worker process
        importlib.import_module(_module)
        break
    except ImportError:  # pragma: no cover - handlers.py is the lead's; orders is ours
        continue


def process_event_message(event_id: int) -> None:
    """Apply one stored event to the domain (idempotent: a processed event is skipped)."""
    processing.process_event(current_session(), event_id)


process_event_actor: dramatiq.Actor[[int], None] = actor(
    queue_name="events", actor_name="process_event", max_retries=5, min_backoff=1000
)(process_event_message)

# Delivery stream: the per-channel send queues (send_email, send_sms, send_zalo, send_messenger).
from automation.delivery import actors as _delivery_actors  # noqa: E402,F401
