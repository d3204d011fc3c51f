"""Consent evidence: every consent decision, append-only."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    ForeignKey,
    Index,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from automation.core.clock import now
from automation.core.models import Base, Id


class ConsentRecord(Base):
    """Evidence of one consent decision, append-only: who, what, how, on which form, when.

    status is granted or denied (refused or withdrawn); the newest row per (contact,
    channel, purpose) is the current state that the consents table mirrors.
    """

    __tablename__ = "consent_records"
    __table_args__ = (
        Index("ix_consent_records_contact_key", "contact_id", "channel", "purpose", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))  # granted | denied
    source: Mapped[str] = mapped_column(String(64))  # shopify, native, import, unsubscribe ...
    method: Mapped[str] = mapped_column(String(64))  # web_form, checkbox, import, sms_reply ...
    form: Mapped[str | None] = mapped_column(Text)  # the form's text or a reference to it
    address: Mapped[str | None] = mapped_column(String(320))  # the address it was given for
    given_at: Mapped[datetime]  # when the person gave or withdrew it (per the source)
    recorded_at: Mapped[datetime] = mapped_column(default=now)
