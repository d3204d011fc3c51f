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
#: Largest id a database row can have (BIGINT).
MAX_ROW_ID = 2**63 - 1
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
    # Not unique: a family often shares one phone (see automation.contacts.identity).
    phone: Mapped[str | None] = mapped_column(String(20), index=True)
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
    """The current consent of one contact for one channel and purpose.

    A projection of the newest ConsentRecord for the same key, kept in step by
    automation.contacts.consent.record_consent (the only writer besides the bulk import).
    """

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


PENDING_EVENTS = "processed_at IS NULL AND dead_at IS NULL"


class Event(Base):
    """A canonical event, stored once per (source, source_event_id)."""

    __tablename__ = "events"
    __table_args__ = (
        UniqueConstraint("source", "source_event_id"),
        Index("ix_events_contact_type_time", "contact_id", "type", "occurred_at"),
        Index("ix_events_type_time", "type", "occurred_at"),
        # The scheduler's pending pass: only the few live unprocessed rows, in id order.
        Index(
            "ix_events_pending",
            "id",
            postgresql_where=text(PENDING_EVENTS),
            sqlite_where=text(PENDING_EVENTS),
        ),
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
    # Failed processing: attempts so far, the handlers still to run, the last reason;
    # dead_at is set after EVENT_MAX_ATTEMPTS (the dead-event list, `mactl events failed`).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    failed_handlers: Mapped[str | None] = mapped_column(String(500))
    failure: Mapped[str | None] = mapped_column(Text)
    dead_at: Mapped[datetime | None]


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


class ChannelReachability(Base):
    """Whether a contact can be reached on one message channel, and why not.

    Written from provider answers (Zalo -118 / -108, Messenger invalid recipient, an
    invalid phone number); ``address`` is the address that failed, so a new phone number
    or id makes the contact reachable again.
    """

    __tablename__ = "channel_reachability"
    __table_args__ = (UniqueConstraint("contact_id", "channel"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(32))  # a message channel (zalo_zns, sms, ...)
    state: Mapped[str] = mapped_column(String(16))  # reachable | unreachable
    reason: Mapped[str] = mapped_column(String(200))
    provider_code: Mapped[str | None] = mapped_column(String(64))
    address: Mapped[str | None] = mapped_column(String(320))
    since: Mapped[datetime] = mapped_column(default=now)
    message_id: Mapped[int | None] = mapped_column(ForeignKey("messages.id", ondelete="SET NULL"))
