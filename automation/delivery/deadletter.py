"""Dead letters: failed outbox rows with their reasons, and replaying them.

The database is the record (status ``failed`` + ``error``); Dramatiq's dead-letter
queues in Redis (``dramatiq:<queue>.XQ``) hold the failed actor messages too, kept for
Dramatiq's dead_message_ttl (7 days); replay works from the database rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from automation.core import outbox
from automation.core.clock import now
from automation.core.config import Settings, get_settings
from automation.core.models import Message
from automation.core.vocabulary import ACCEPTED_STATUSES, PENDING_STATUSES, QUEUES, Status


def list_failed(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    """Failed messages, newest first, with the reason."""
    rows = session.scalars(
        select(Message)
        .where(Message.status == Status.FAILED)
        .order_by(Message.updated_at.desc(), Message.id.desc())
        .limit(limit)
    )
    return [
        {
            "id": m.id,
            "channel": m.channel,
            "template": m.template,
            "contact_id": m.contact_id,
            "attempts": m.attempts,
            "fallback_from_id": m.fallback_from_id,
            "updated_at": m.updated_at,
            "reason": m.error,
        }
        for m in rows
    ]


def sent_by_fallback(session: Session, ids: list[int]) -> dict[int, str]:
    """Message id -> why replaying it would send its step twice (a fallback went out).

    Follows fallback chains (A -> B -> C): replaying A is refused when any of its
    fallbacks is pending or was accepted by the provider.
    """
    refused: dict[int, str] = {}
    frontier = {i: i for i in ids}  # fallback parent id -> the replayed id it descends from
    while frontier:
        rows = session.execute(
            select(Message.id, Message.fallback_from_id, Message.channel, Message.status).where(
                Message.fallback_from_id.in_(frontier)
            )
        ).all()
        nxt: dict[int, int] = {}
        for row_id, parent, channel, status in rows:
            origin = frontier.get(parent or 0)
            if origin is None or origin in refused:
                continue
            if status in ACCEPTED_STATUSES or status in PENDING_STATUSES:
                refused[origin] = (
                    f"step already {'went' if status in ACCEPTED_STATUSES else 'is going'} out "
                    f"by fallback message {row_id} on {channel} ({status})"
                )
            else:
                nxt[row_id] = origin
        frontier = {k: v for k, v in nxt.items() if v not in refused}
    return refused


def replay(session: Session, ids: list[int] | None) -> tuple[list[int], dict[int, str]]:
    """Put failed rows (the given ids, or all with None) back to ``queued`` and enqueue them.

    Returns (replayed ids, {refused id: reason}): a message whose step already went out
    through a fallback channel is never sent again.
    """
    where = [Message.status == Status.FAILED]
    if ids is not None:
        where.append(Message.id.in_(ids))
    failed = list(session.scalars(select(Message.id).where(*where)))
    refused = sent_by_fallback(session, failed)
    stmt = (
        update(Message)
        .where(Message.id.in_([i for i in failed if i not in refused]), *where)
        .values(status=Status.QUEUED, attempts=0, not_before=None, updated_at=now())
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    replayed = sorted(session.execute(stmt).scalars().all())
    outbox.after_commit(session, "messages", replayed)
    session.commit()
    return replayed, refused


def redis_dead_counts(settings: Settings | None = None) -> dict[str, int]:
    """Actor messages in Dramatiq's dead-letter queue per send queue (empty without Redis)."""
    settings = settings or get_settings()
    if not settings.redis_url:
        return {}
    import redis

    client = redis.Redis.from_url(settings.redis_url, socket_connect_timeout=3)
    return {q: int(client.zcard(f"dramatiq:{q}.XQ")) for q in QUEUES}
