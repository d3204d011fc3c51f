"""The module `mactl worker` gives the Dramatiq CLI: importing it declares every actor,
registers every process_event handler and installs the outbox sinks, in each worker
process."""

from automation.runtime import actors, handlers, send_actors, wiring

__all__ = ["actors", "handlers", "send_actors"]

wiring.install()
