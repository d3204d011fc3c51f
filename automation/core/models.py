"""SQLAlchemy 2 typed models: the database is the source of truth."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from automation.core.clock import ensure_utc, now

Id = BigInteger().with_variant(Integer, "sqlite")
Json = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = ensure_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else ensure_utc(value)


NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: Json}


class Contact(Base):
    """A person we may message, with identities, addresses and order rollups."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    phone: Mapped[str | None] = mapped_column(String(20), unique=True)
    zalo_user_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    facebook_psid: Mapped[str | None] = mapped_column(String(64), unique=True)
    first_name: Mapped[str | None] = mapped_column(String(120))
    last_name: Mapped[str | None] = mapped_column(String(120))
    locale: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str | None] = mapped_column(String(64))
    attributes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tags: Mapped[list[str]] = mapped_column(Json, default=list)
    orders_count: Mapped[int] = mapped_column(Integer, default=0)
    total_spent: Mapped[int] = mapped_column(BigInteger, default=0)  # VND, integer
    first_order_at: Mapped[datetime | None]
    last_order_at: Mapped[datetime | None]
    last_inbound_at: Mapped[dict[str, Any]] = mapped_column(default=dict)  # channel -> ISO time
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)

    identities: Mapped[list[ContactIdentity]] = relationship(back_populates="contact")
    consents: Mapped[list[Consent]] = relationship(back_populates="contact")


class ContactIdentity(Base):
    """A contact's id in one external system (shopify customer 42, woocommerce 7, ...)."""

    __tablename__ = "contact_identities"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))

    contact: Mapped[Contact] = relationship(back_populates="identities")


class Consent(Base):
    """The current consent of one contact for one channel and purpose."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("contact_id", "channel", "purpose"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))  # email | sms | zalo | messenger
    purpose: Mapped[str] = mapped_column(String(16))  # marketing | transactional
    status: Mapped[str] = mapped_column(String(16))  # granted | denied
    source: Mapped[str] = mapped_column(String(64))
    recorded_at: Mapped[datetime] = mapped_column(default=now)

    contact: Mapped[Contact] = relationship(back_populates="consents")


class Suppression(Base):
    """An address that must not be messaged on a channel (bounce, complaint, opt-out)."""

    __tablename__ = "suppressions"
    __table_args__ = (UniqueConstraint("channel", "address"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    channel: Mapped[str] = mapped_column(String(32))
    address: Mapped[str] = mapped_column(String(320))
    reason: Mapped[str] = mapped_column(String(64))  # hard_bounce | complaint | unsubscribed
    scope: Mapped[str] = mapped_column(String(16), default="marketing")  # marketing | all
    created_at: Mapped[datetime] = mapped_column(default=now)


class Event(Base):
    """A canonical event, stored once per (source, source_event_id)."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("source", "source_event_id"),
        Index("ix_events_contact_type_time", "contact_id", "type", "occurred_at"),
        Index("ix_events_type_time", "type", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    source_event_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    occurred_at: Mapped[datetime]
    received_at: Mapped[datetime] = mapped_column(default=now)
    processed_at: Mapped[datetime | None]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Order(Base):
    """One shop order per (source, external_id): rollups are recomputed from these rows."""

    __tablename__ = "orders"
    __table_args__ = (UniqueConstraint("source", "external_id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16))  # open | paid | cancelled | refunded
    total: Mapped[int] = mapped_column(BigInteger, default=0)  # VND
    currency: Mapped[str] = mapped_column(String(3), default="VND")
    placed_at: Mapped[datetime]
    checkout_token: Mapped[str | None] = mapped_column(String(128), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)


class Cart(Base):
    """A checkout or cart; abandoned when no order follows within the window."""

    __tablename__ = "carts"
    __table_args__ = (
        UniqueConstraint("source", "external_id"),
        Index("ix_carts_pending", "converted_at", "abandoned_at", "updated_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(128))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    items: Mapped[list[dict[str, Any]]] = mapped_column(Json, default=list)
    recovery_url: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=now)
    converted_at: Mapped[datetime | None]
    abandoned_at: Mapped[datetime | None]


class Segment(Base):
    """A named rule set; its members are stored in segment_memberships."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    rules: Mapped[dict[str, Any]] = mapped_column(default=dict)
    definition_hash: Mapped[str] = mapped_column(String(64))
    time_based: Mapped[bool] = mapped_column(default=False)
    refreshed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)


class SegmentMembership(Base):
    """One stint of a contact in a segment: open while exited_at is null."""

    __tablename__ = "segment_memberships"
    __table_args__ = (
        Index(
            "uq_segment_memberships_open",
            "segment_id",
            "contact_id",
            unique=True,
            postgresql_where=text("exited_at IS NULL"),
            sqlite_where=text("exited_at IS NULL"),
        ),
        Index("ix_segment_memberships_contact", "contact_id", "exited_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("segments.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    entered_at: Mapped[datetime] = mapped_column(default=now)
    exited_at: Mapped[datetime | None]


class Sequence(Base):
    """A named sequence; its steps live in versions."""

    __tablename__ = "sequences"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="active")  # active | paused
    current_version_id: Mapped[int | None] = mapped_column(
        ForeignKey("sequence_versions.id", use_alter=True, name="fk_sequences_current_version")
    )
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)


class SequenceVersion(Base):
    """An immutable definition; running enrollments stay on the version they started on."""

    __tablename__ = "sequence_versions"
    __table_args__ = (UniqueConstraint("sequence_id", "version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]] = mapped_column(default=dict)
    definition_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=now)


class Enrollment(Base):
    """A contact's run through one sequence version."""

    __tablename__ = "enrollments"
    __table_args__ = (
        Index("ix_enrollments_due", "state", "next_run_at"),
        Index("ix_enrollments_contact_sequence", "contact_id", "sequence_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    version_id: Mapped[int] = mapped_column(ForeignKey("sequence_versions.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    state: Mapped[str] = mapped_column(String(16), default="active")  # active|waiting|done|exited
    cursor: Mapped[str] = mapped_column(String(200), default="0")
    next_run_at: Mapped[datetime | None]
    waiting_for: Mapped[str | None] = mapped_column(String(64))
    context: Mapped[dict[str, Any]] = mapped_column(default=dict)
    trigger_event_id: Mapped[int | None] = mapped_column(
        ForeignKey("events.id", ondelete="SET NULL")
    )
    exit_reason: Mapped[str | None] = mapped_column(String(64))
    entered_at: Mapped[datetime] = mapped_column(default=now)
    finished_at: Mapped[datetime | None]


class Message(Base):
    """The outbox: one row per (enrollment, step), claimed before the provider call."""

    __tablename__ = "messages"
    __table_args__ = (
        UniqueConstraint("enrollment_id", "step_key"),
        Index("ix_messages_status_updated", "status", "updated_at"),
        Index("ix_messages_contact_channel_time", "contact_id", "channel", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE")
    )
    step_key: Mapped[str] = mapped_column(String(200))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))
    purpose: Mapped[str] = mapped_column(String(16), default="marketing")
    template: Mapped[str] = mapped_column(String(200))
    address: Mapped[str | None] = mapped_column(String(320))
    status: Mapped[str] = mapped_column(String(16), default="queued")
    # queued | sending | sent | delivered | deferred | failed | skipped
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime | None]
    provider: Mapped[str | None] = mapped_column(String(32))
    provider_message_id: Mapped[str | None] = mapped_column(String(200), index=True)
    segments: Mapped[int | None] = mapped_column(Integer)
    fallback_from_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL")
    )
    fallback: Mapped[list[str]] = mapped_column(Json, default=list)
    error: Mapped[str | None] = mapped_column(Text)
    rendered: Mapped[dict[str, Any]] = mapped_column(default=dict)
    links: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=now)
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)
    sent_at: Mapped[datetime | None]


class MessageEvent(Base):
    """Delivery and engagement results for a message (delivered, opened, clicked, ...)."""

    __tablename__ = "message_events"
    __table_args__ = (
        UniqueConstraint("provider", "provider_event_id"),
        Index("ix_message_events_message_type", "message_id", "type"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(32))
    provider: Mapped[str] = mapped_column(String(32))
    provider_event_id: Mapped[str | None] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(default=now)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ProviderToken(Base):
    """Rotating OAuth tokens (Zalo OA): access and refresh token saved together."""

    __tablename__ = "provider_tokens"

    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=now, onupdate=now)


# --------------------------------------------------------------------------- analytics
# Orders credited to messages, and goal conversions of enrollments (treated or holdout).
# Revenue is integer VND; reversed_at is set when the order is cancelled or refunded.


class Attribution(Base):
    """One order credited to the last message that led to it (click, else view)."""

    __tablename__ = "attributions"
    __table_args__ = (Index("ix_attributions_sequence_time", "sequence_id", "attributed_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), unique=True
    )
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE")
    )
    sequence_id: Mapped[int | None] = mapped_column(
        ForeignKey("sequences.id", ondelete="CASCADE")
    )
    version_id: Mapped[int | None] = mapped_column(
        ForeignKey("sequence_versions.id", ondelete="SET NULL")
    )
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    step_key: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(16))  # click | view
    revenue: Mapped[int] = mapped_column(BigInteger, default=0)  # VND
    attributed_at: Mapped[datetime]
    reversed_at: Mapped[datetime | None]


class GoalConversion(Base):
    """An enrollment (treated or holdout) whose contact reached the sequence goal in time."""

    __tablename__ = "goal_conversions"
    __table_args__ = (Index("ix_goal_conversions_sequence_time", "sequence_id", "converted_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    enrollment_id: Mapped[int] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE"), unique=True
    )
    sequence_id: Mapped[int] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    revenue: Mapped[int] = mapped_column(BigInteger, default=0)  # VND
    holdout: Mapped[bool] = mapped_column(default=False)  # the enrollment was held out
    converted_at: Mapped[datetime]
    reversed_at: Mapped[datetime | None]


# The report groups enrollments by sequence and entry time.
Index("ix_enrollments_sequence_entered", Enrollment.sequence_id, Enrollment.entered_at)
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


# --------------------------------------------------------------------------- privacy
Index("ix_inbox_received_at", InboxDelivery.received_at)


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
