"""The durable ingest inbox: raw webhook deliveries, stored before they are mapped."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from automation.core.clock import now
from automation.core.models import Base, Id


class InboxDelivery(Base):
    """One raw webhook delivery, stored before it is mapped (the durable inbox).

    status: pending (waiting to be mapped) | mapped (its events are stored) |
    quarantined (mapping failed; `reason` says why, `mactl inbox replay` retries) |
    ignored (valid, but nothing we act on).
    """

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("source", "dedupe_key"),
        Index("ix_inbox_status_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    topic: Mapped[str] = mapped_column(String(128))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    headers: Mapped[dict[str, Any]] = mapped_column(default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime] = mapped_column(default=now)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    reason: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    mapped_at: Mapped[datetime | None]


# Retention purges by age.
Index("ix_inbox_received_at", InboxDelivery.received_at)
