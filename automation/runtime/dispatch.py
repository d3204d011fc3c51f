"""enqueue_messages: route committed outbox rows to their channel's queue, in batches.

Call it after the transaction that created the rows has committed (the actor reads
them): ``messages_sink`` does, as the sink of automation.core.outbox for "messages".
Rows are grouped by queue (email, sms, zalo, messenger) and split into batches of
DELIVERY_BATCH_SIZE ids, one actor message per batch, so a slow provider only holds back
its own queue and each batch shares one database round trip per step (and one SMTP
session for e-mail).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.config import Settings, get_settings
from automation.core.db import get_engine
from automation.core.models import Message
from automation.core.vocabulary import CHANNEL_QUEUE
from automation.runtime.send_actors import SEND_ACTORS


def route(session: Session, ids: Iterable[int]) -> dict[str, list[int]]:
    """queue name -> sorted message ids, for the given outbox rows."""
    wanted = sorted(set(ids))
    routed: dict[str, list[int]] = {}
    for start in range(0, len(wanted), 5000):
        chunk = wanted[start : start + 5000]
        for mid, channel in session.execute(
            select(Message.id, Message.channel).where(Message.id.in_(chunk))
        ):
            queue = CHANNEL_QUEUE.get(channel)
            if queue is not None:
                routed.setdefault(queue, []).append(mid)
    return {q: sorted(v) for q, v in routed.items()}


def batches(ids: list[int], size: int) -> list[list[int]]:
    """``ids`` split into lists of at most ``size``."""
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def enqueue_messages(session: Session, ids: Iterable[int], settings: Settings | None = None) -> int:
    """Send the rows to their per-channel actors; returns the number of actor messages."""
    settings = settings or get_settings()
    sent = 0
    for queue, queue_ids in route(session, ids).items():
        for chunk in batches(queue_ids, settings.delivery_batch_size):
            SEND_ACTORS[queue].send(chunk)
            sent += 1
    return sent


def messages_sink(bind: Any, ids: list[int]) -> None:
    """Enqueue committed outbox rows, reading their channels in a fresh session on ``bind``."""
    session = Session(bind=bind if bind is not None else get_engine(), expire_on_commit=False)
    try:
        enqueue_messages(session, ids)
        session.commit()
    finally:
        session.close()
