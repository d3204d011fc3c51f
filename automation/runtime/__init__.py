"""The runtime ring: the Dramatiq broker, every actor (thin), dispatch to the send queues,
the scheduler and its task table, the process_event handler table, and ``wiring.install``
(handlers + the outbox sinks the domain hands committed ids to)."""
