"""Retention: raw webhook payloads and rendered message bodies are not kept for ever.

* inbox rows (raw payloads) received more than RETENTION_DAYS_RAW days ago (default 30)
  are deleted, except ``pending`` ones (not mapped yet: their events would be lost);
* message bodies (``rendered``) of messages whose last status change is
  more than RETENTION_DAYS_BODIES days ago (default 90) are emptied; the row, its
  status, its link map (clicks keep redirecting) and its counts stay.

The scheduler runs :func:`purge_expired` every pass (task ``retention``), at most
BATCH rows of each kind a pass so that one pass stays short.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Select, delete, select, update
from sqlalchemy.orm import Session

from automation.core.config import Settings, get_settings
from automation.core.models import Message
from automation.core.models_inbox import InboxDelivery
from automation.core.vocabulary import SETTLED_STATUSES

BATCH = 1000


def purge_expired(session: Session, now: datetime, settings: Settings | None = None) -> int:
    """Purge expired raw payloads and message bodies; how many rows were purged."""
    s = settings or get_settings()
    return purge_raw(session, now - timedelta(days=s.retention_days_raw)) + purge_bodies(
        session, now - timedelta(days=s.retention_days_bodies)
    )


def purge_raw(session: Session, before: datetime) -> int:
    """Delete inbox rows received before ``before`` (pending ones are kept)."""
    ids = list(
        session.scalars(
            select(InboxDelivery.id)
            .where(InboxDelivery.received_at < before, InboxDelivery.status != "pending")
            .limit(BATCH)
        )
    )
    if ids:
        session.execute(delete(InboxDelivery).where(InboxDelivery.id.in_(ids)))
    return len(ids)


def expired_bodies(before: datetime) -> Select[int]:
    """Ids of settled messages last changed before ``before`` that still hold a body.

    ``status IN (settled)`` rather than ``NOT IN (pending)``: the (status, updated_at)
    index then finds the old rows of each status instead of a scan of every message."""
    return (
        select(Message.id)
        .where(
            Message.status.in_(SETTLED_STATUSES),
            Message.updated_at < before,
            Message.rendered != {},
        )
        .limit(BATCH)
    )


def purge_bodies(session: Session, before: datetime) -> int:
    """Empty the bodies of settled messages last changed before ``before``."""
    ids = list(session.scalars(expired_bodies(before)))
    if ids:
        session.execute(
            update(Message)
            .where(Message.id.in_(ids))
            .values(rendered={}, updated_at=Message.updated_at)
            .execution_options(synchronize_session=False)
        )
    return len(ids)
