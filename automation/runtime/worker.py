"""The module `mactl worker` gives the Dramatiq CLI: importing it declares every actor,
installs the process_event handlers and installs the outbox sinks, in each worker
process, then freezes the start-up heap (automation.runtime.heap)."""

from automation.runtime import actors, send_actors, wiring
from automation.runtime.heap import freeze_startup_objects

__all__ = ["actors", "send_actors"]

wiring.install()
freeze_startup_objects()
