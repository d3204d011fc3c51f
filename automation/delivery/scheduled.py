"""Imported by automation.runtime.scheduler (TASK_MODULES): registers delivery's periodic tasks."""

from automation.delivery import stale  # noqa: F401  registers "stale_outbox"
