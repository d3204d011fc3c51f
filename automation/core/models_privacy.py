"""Personal-data bookkeeping: the audit log of mactl actions and records of erasures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from automation.core.clock import now
from automation.core.models import Base, Id


class AuditEntry(Base):
    """Who did what with `mactl` and when (apply, export, forget, DLQ replay); no personal data."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    at: Mapped[datetime] = mapped_column(default=now, index=True)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Erasure(Base):
    """That a contact's personal data was erased, and when (counts only, no personal data)."""

    __tablename__ = "erasures"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(BigInteger, index=True)  # the anonymised row
    erased_at: Mapped[datetime] = mapped_column(default=now)
    counts: Mapped[dict[str, Any]] = mapped_column(default=dict)
