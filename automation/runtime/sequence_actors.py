"""Thin Dramatiq actors of the sequences stream (queue "sequences")."""

from __future__ import annotations

from automation.core import clock
from automation.runtime.broker import actor, current_session
from automation.sequences.engine import advance_enrollment


@actor(queue_name="sequences", max_retries=5)  # type: ignore[untyped-decorator,unused-ignore]
def advance_enrollment_actor(enrollment_id: int) -> None:
    """Advance one enrollment as of now (messages go to delivery after the commit)."""
    advance_enrollment(current_session(), enrollment_id, clock.now())
