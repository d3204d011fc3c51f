"""Analytics tables: orders credited to messages, goal conversions of enrollments."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Index,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from automation.core.models import Base, Enrollment, Id

# --------------------------------------------------------------------------- analytics
# Orders credited to messages, and goal conversions of enrollments (treated or holdout).
# Revenue is integer VND; reversed_at is set when the order is cancelled or refunded.


class Attribution(Base):
    """One order credited to the last message that led to it (click, else view)."""

    __tablename__ = "attributions"
    __table_args__ = (Index("ix_attributions_sequence_time", "sequence_id", "attributed_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), unique=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id", ondelete="SET NULL"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    enrollment_id: Mapped[int | None] = mapped_column(
        ForeignKey("enrollments.id", ondelete="CASCADE")
    )
    sequence_id: Mapped[int | None] = mapped_column(ForeignKey("sequences.id", ondelete="CASCADE"))
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
