"""Thin Dramatiq actors: one queue per channel family, each taking a batch of outbox ids.

``send_email`` (queue ``email``), ``send_sms`` (``sms``), ``send_zalo`` (``zalo``: ZNS and
OA) and ``send_messenger`` (``messenger``). Retries: a batch with transient failures is
retried with exponential backoff computed from the rows' attempts (DELIVERY_MIN_BACKOFF_MS
doubling up to DELIVERY_MAX_BACKOFF_MS, at least the provider's Retry-After). Rows that
reach DELIVERY_MAX_ATTEMPTS are marked ``failed`` and the actor message is failed
(``DeadLettered`` is in ``throws``), which puts it in Dramatiq's dead-letter queue;
rows of that batch that may still be retried are re-sent in a new actor message first.
"""

from __future__ import annotations

from typing import Any

import dramatiq

from automation.core import outbox
from automation.delivery.send import deliver_batch
from automation.runtime.broker import actor, current_session

#: Dramatiq's own cap; the database attempts counter (DELIVERY_MAX_ATTEMPTS <= 50) decides.
MAX_RETRIES = 60
OPTIONS: dict[str, Any] = {
    "max_retries": MAX_RETRIES,
    "min_backoff": 15_000,
    "max_backoff": 3_600_000,
    "time_limit": 15 * 60_000,
}


class DeadLettered(Exception):
    """Raised when rows of a batch failed for good: the actor message goes to the DLQ."""


def run_batch(queue: str, ids: list[int]) -> None:
    """Deliver a batch and turn its outcome into Dramatiq retry / dead-letter behaviour."""
    session = current_session()
    result = deliver_batch(session, [int(i) for i in ids])
    outbox.hand_off("messages", result.fallbacks, session.get_bind())  # committed by deliver_batch
    if result.dead:
        if result.retry:
            SEND_ACTORS[queue].send_with_options(args=(result.retry,), delay=result.retry_delay_ms)
        reasons = "; ".join(f"{i}: {result.errors.get(i, '')}" for i in result.dead)
        raise DeadLettered(f"failed for good: {reasons}")
    if result.retry:
        raise dramatiq.Retry(delay=result.retry_delay_ms)


def _send_email(ids: list[int]) -> None:
    """Send a batch of e-mail rows (one SMTP session)."""
    run_batch("email", ids)


def _send_sms(ids: list[int]) -> None:
    """Send a batch of SMS rows."""
    run_batch("sms", ids)


def _send_zalo(ids: list[int]) -> None:
    """Send a batch of Zalo ZNS / OA rows."""
    run_batch("zalo", ids)


def _send_messenger(ids: list[int]) -> None:
    """Send a batch of Messenger rows."""
    run_batch("messenger", ids)


def _declare(queue: str, fn: Any) -> dramatiq.Actor[[list[int]], None]:
    declared: dramatiq.Actor[[list[int]], None] = actor(
        queue_name=queue, actor_name=f"send_{queue}", throws=(DeadLettered,), **OPTIONS
    )(fn)
    return declared


send_email = _declare("email", _send_email)
send_sms = _declare("sms", _send_sms)
send_zalo = _declare("zalo", _send_zalo)
send_messenger = _declare("messenger", _send_messenger)

SEND_ACTORS: dict[str, dramatiq.Actor[[list[int]], None]] = {
    "email": send_email,
    "sms": send_sms,
    "zalo": send_zalo,
    "messenger": send_messenger,
}
