"""The module `mactl worker` gives the Dramatiq CLI: importing it declares every actor,
installs the process_event handlers and installs the outbox sinks, in each worker
process."""

from automation.runtime import actors, send_actors, wiring

__all__ = ["actors", "send_actors"]

wiring.install()
