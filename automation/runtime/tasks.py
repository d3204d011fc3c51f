"""The scheduler's task table: what one pass does, in order. The work lives in the domain.

  inbox            webhook deliveries stored but not mapped (their queue message was lost)
  events           stored events nobody processed yet (their queue message was lost), inline;
                   segment entries/exits set-based (automation.sequences.bulk) first
  abandoned_carts  carts with no order within CART_ABANDON_MINUTES -> cart.abandoned once
  time_segments    segments whose rules depend on time, then the events that recorded
  due_enrollments  enrollments whose next_run_at has come (waits, wait_until timeouts)
  stale_outbox     stuck sending / lost queued / due deferred outbox rows sent again
  sms_pools        advertising SMS pools whose window is over: sent, or rows fall back
  zalo_tokens      refresh the Zalo OA token pair before it expires, even when idle
  events_after     events emitted by the tasks above, so one pass is complete
  retention        raw webhook payloads and message bodies past their retention days
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from sqlalchemy.orm import Session

from automation.contacts.carts import detect_abandoned_carts
from automation.core import clock
from automation.core.processing import process_pending_events
from automation.delivery.pools import flush_pools
from automation.delivery.providers.zalo import refresh_ahead
from automation.delivery.stale import requeue_stale
from automation.inbox.worker import inbox_task
from automation.privacy.retention import purge_expired
from automation.segments.membership import refresh_time_based_segments
from automation.sequences.bulk import process_segment_events
from automation.sequences.due import run_due_enrollments


class Task(NamedTuple):
    """One scheduler task: ``fn(session, now) -> count``, run in its own session."""

    name: str
    fn: Callable[[Session, datetime], int]


def pending_events(session: Session, now: datetime) -> int:
    """Stored events not processed yet: segment transitions set-based, then the rest inline."""
    return process_segment_events(session, now) + process_pending_events(session, now)


def time_segments(session: Session, now: datetime) -> int:
    """Refresh time-based segments, then process the entered/exited events they recorded."""
    changes = refresh_time_based_segments(session, now)
    session.commit()
    if changes:  # nothing recorded: the pass's events_after task takes any other event
        pending_events(session, max(now, clock.now()))  # the events were stamped clock.now()
    return changes


TASKS: tuple[Task, ...] = (
    Task("inbox", inbox_task),
    Task("events", pending_events),
    Task("abandoned_carts", detect_abandoned_carts),
    Task("time_segments", time_segments),
    Task("due_enrollments", run_due_enrollments),
    Task("stale_outbox", requeue_stale),
    Task("sms_pools", flush_pools),
    Task("zalo_tokens", refresh_ahead),
    Task("events_after", pending_events),
    Task("retention", purge_expired),
)
