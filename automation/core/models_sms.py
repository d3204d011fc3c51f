"""Advertising SMS pools and the national do-not-advertise list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from automation.core.clock import now
from automation.core.models import Base, Id, Json


class SmsPool(Base):
    """An advertising SMS pool: rows with identical content sent as one request.

    ``status``: open (taking rows) | sending (claimed by one worker) | sent | expired
    (closed below 30 phones: its rows fell back or moved on). Its id is the RequestId.
    """

    __tablename__ = "sms_pools"
    __table_args__ = (Index("ix_sms_pools_status_closes", "status", "closes_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    content: Mapped[str] = mapped_column(Text)
    links: Mapped[dict[str, Any]] = mapped_column(default=dict)  # index -> target URL
    status: Mapped[str] = mapped_column(String(16), default="open")
    size: Mapped[int] = mapped_column(Integer, default=0)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    provider_message_ids: Mapped[list[str]] = mapped_column(Json, default=list)  # SMSID per part
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=now)
    closes_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class SmsPoolMember(Base):
    """A marketing SMS row waiting in (or sent by) a pool."""

    __tablename__ = "sms_pool_members"

    message_id: Mapped[int] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    pool_id: Mapped[int] = mapped_column(ForeignKey("sms_pools.id", ondelete="CASCADE"), index=True)
    phone: Mapped[str] = mapped_column(String(20))
    joined_at: Mapped[datetime] = mapped_column(default=now)


class DncPhone(Base):
    """The national do-not-advertise list (Decree 91 Art. 13), E.164; re-import replaces it."""

    __tablename__ = "dnc_phones"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    imported_at: Mapped[datetime] = mapped_column(default=now)
