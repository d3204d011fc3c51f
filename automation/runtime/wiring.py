"""Runtime startup: the process_event handlers and the outbox sinks to the Dramatiq queues.

``install()`` installs both (automation.runtime.handlers, automation.core.outbox); every
process that may process events or commit new outbox rows calls it once (mactl, the HTTP
app, the worker module, tests).
The sinks import the actors on first use, so installing costs nothing and reads no
settings: a command that never commits such rows never loads Dramatiq.
"""

from __future__ import annotations

import logging
from typing import Any

from automation.core import outbox
from automation.runtime import handlers

log = logging.getLogger(__name__)


def send_messages(bind: Any, ids: list[int]) -> None:
    """Sink for "messages": committed outbox rows to their per-channel send queues."""
    from automation.runtime.dispatch import messages_sink

    messages_sink(bind, ids)


def process_events(_bind: Any, ids: list[int]) -> None:
    """Sink for "events": committed events to the process_event queue, one message each."""
    from automation.runtime.actors import process_event_actor

    for event_id in ids:
        try:
            process_event_actor.send(event_id)
        except Exception as exc:  # noqa: BLE001 - the event is stored; the scheduler has it
            log.warning("enqueue failed event_id=%s error=%s", event_id, type(exc).__name__)


def install() -> None:
    """Install the process_event handler table and the runtime's outbox sinks (idempotent)."""
    handlers.install()
    outbox.register_sink("messages", send_messages)
    outbox.register_sink("events", process_events)
