"""Set-based report queries: one GROUP BY per question, over a cohort of enrollments.

The cohort is the enrollments that entered in [since, until) (optionally of one
sequence); every count below is about them, so rates compare like with like.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, false, func, select
from sqlalchemy.orm import Session, aliased

from automation.core.db import is_postgres
from automation.core.models import Enrollment, Message, MessageEvent, Sequence
from automation.core.models_analytics import Attribution, GoalConversion
from automation.core.vocabulary import ENGAGEMENT, Status

REPORT_TZ = "Asia/Ho_Chi_Minh"
#: Message flag -> the message-event types that set it (vocabulary meanings).
FLAGS: dict[str, tuple[str, ...]] = {
    "opened": ENGAGEMENT["opened"],
    "clicked": ENGAGEMENT["clicked"],
    "replied": ENGAGEMENT["replied"],
    "unsubscribed": ("unsubscribed",),
    "complained": (Status.COMPLAINED,),
}
UNDELIVERED = (Status.BOUNCED, Status.FAILED)


@dataclass(frozen=True)
class Cohort:
    """Which enrollments a report covers."""

    sequence_key: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def where(self) -> list[Any]:
        """Filters on Enrollment (and Sequence, which every query joins)."""
        found: list[Any] = []
        if self.sequence_key is not None:
            found.append(Sequence.key == self.sequence_key)
        if self.since is not None:
            found.append(Enrollment.entered_at >= self.since)
        if self.until is not None:
            found.append(Enrollment.entered_at < self.until)
        return found


def _cohort(query: Any, cohort: Cohort) -> Any:
    return query.join(Sequence, Sequence.id == Enrollment.sequence_id).where(*cohort.where())


def holdout_flag() -> Any:
    """SQL expression: true for a held-out enrollment (context.holdout), else false."""
    return func.coalesce(Enrollment.context["holdout"].as_boolean(), false())


def enrollment_counts(session: Session, cohort: Cohort) -> list[Any]:
    """(sequence key, held out, enrolled) rows."""
    flag = holdout_flag().label("holdout")
    query = select(Sequence.key, flag, func.count(Enrollment.id)).select_from(Enrollment)
    return list(session.execute(_cohort(query, cohort).group_by(Sequence.key, flag)))


def _message_flags() -> Any:
    """Per message, 1/0 for each flag (only events that set a flag are read)."""
    types = sorted({t for names in FLAGS.values() for t in names})
    columns = [
        func.max(case((MessageEvent.type.in_(names), 1), else_=0)).label(name)
        for name, names in FLAGS.items()
    ]
    return (
        select(MessageEvent.message_id, *columns)
        .where(MessageEvent.type.in_(types))
        .group_by(MessageEvent.message_id)
        .subquery()
    )


def message_counts(session: Session, cohort: Cohort) -> list[Any]:
    """(sequence, step_key, channel, day sent, messages, sent, delivered, bounced) rows.

    One pass over the cohort's messages feeds the step table, the channel table and the
    daily chart. Delivered: accepted by the provider and not bounced or failed since.
    """
    sent = Message.sent_at.is_not(None)
    day = _day(session, Message.sent_at).label("day")
    query = (
        select(
            Sequence.key,
            Message.step_key,
            Message.channel,
            day,
            func.count(Message.id),
            func.count(case((sent, 1))),
            func.count(case((and_(sent, Message.status.not_in(UNDELIVERED)), 1))),
            func.count(case((Message.status == Status.BOUNCED, 1))),
        )
        .select_from(Enrollment)
        .join(Message, Message.enrollment_id == Enrollment.id)
    )
    query = _cohort(query, cohort).group_by(Sequence.key, Message.step_key, Message.channel, day)
    return list(session.execute(query))


def engagement_counts(session: Session, cohort: Cohort) -> list[Any]:
    """(sequence, step_key, channel, *FLAGS) rows: messages opened, clicked, ... per step."""
    flags = _message_flags()
    query = (
        select(
            Sequence.key,
            Message.step_key,
            Message.channel,
            *(func.sum(flags.c[name]) for name in FLAGS),
        )
        .select_from(Enrollment)
        .join(Message, Message.enrollment_id == Enrollment.id)
        .join(flags, flags.c.message_id == Message.id)
    )
    query = _cohort(query, cohort).group_by(Sequence.key, Message.step_key, Message.channel)
    return list(session.execute(query))


def attribution_counts(session: Session, cohort: Cohort) -> list[Any]:
    """(sequence, step_key, channel, orders, kept orders, revenue kept) rows."""
    kept = Attribution.reversed_at.is_(None)
    query = (
        select(
            Sequence.key,
            Attribution.step_key,
            Attribution.channel,
            func.count(Attribution.id),
            func.count(case((kept, 1))),
            func.coalesce(func.sum(case((kept, Attribution.revenue), else_=0)), 0),
        )
        .select_from(Enrollment)
        .join(Attribution, Attribution.enrollment_id == Enrollment.id)
    )
    query = _cohort(query, cohort).group_by(Sequence.key, Attribution.step_key, Attribution.channel)
    return list(session.execute(query))


def goal_counts(session: Session, cohort: Cohort) -> list[Any]:
    """(sequence, held out, conversions, revenue kept) rows."""
    kept = GoalConversion.reversed_at.is_(None)
    flag = holdout_flag().label("holdout")
    query = (
        select(
            Sequence.key,
            flag,
            func.count(GoalConversion.id),
            func.coalesce(func.sum(case((kept, GoalConversion.revenue), else_=0)), 0),
        )
        .select_from(Enrollment)
        .join(GoalConversion, GoalConversion.enrollment_id == Enrollment.id)
    )
    return list(session.execute(_cohort(query, cohort).group_by(Sequence.key, flag)))


def arm_counts(session: Session, cohort: Cohort, sequence_key: str, position: str) -> list[Any]:
    """(arm, enrolled, converted, clicked) rows of the split at ``position`` (no holdouts)."""
    arm = Enrollment.context[("variants", position)].as_string().label("arm")
    own = aliased(Enrollment)
    clicked = (
        select(Message.enrollment_id)
        .join(own, own.id == Message.enrollment_id)
        .join(MessageEvent, MessageEvent.message_id == Message.id)
        .where(
            MessageEvent.type.in_(FLAGS["clicked"]),
            own.sequence_id.in_(select(Sequence.id).where(Sequence.key == sequence_key)),
        )
        .group_by(Message.enrollment_id)
        .subquery()
    )
    query = (
        select(
            arm,
            func.count(Enrollment.id),
            func.count(GoalConversion.id),
            func.count(clicked.c.enrollment_id),
        )
        .select_from(Enrollment)
        .outerjoin(GoalConversion, GoalConversion.enrollment_id == Enrollment.id)
        .outerjoin(clicked, clicked.c.enrollment_id == Enrollment.id)
    )
    query = _cohort(query, cohort).where(
        Sequence.key == sequence_key, arm.is_not(None), holdout_flag().is_(false())
    )
    return list(session.execute(query.group_by(arm)))


def _day(session: Session, column: Any) -> Any:
    """The calendar day (Vietnam time) of a timestamp column, as a groupable expression."""
    if is_postgres(session):
        return func.date_trunc("day", func.timezone(REPORT_TZ, column))
    return func.strftime("%Y-%m-%d", column, "+7 hours")


def day_text(value: Any) -> str | None:
    """A _day value (timestamp on PostgreSQL, text on SQLite) -> ``YYYY-MM-DD``."""
    if value is None:
        return None
    return value.strftime("%Y-%m-%d") if isinstance(value, datetime) else str(value)[:10]


def daily_conversions(session: Session, cohort: Cohort) -> list[tuple[str, int, int]]:
    """(day, orders credited and kept, revenue kept) per Vietnam calendar day."""
    conv_day = _day(session, Attribution.attributed_at).label("day")
    kept = Attribution.reversed_at.is_(None)
    query = (
        select(
            conv_day,
            func.count(case((kept, 1))),
            func.coalesce(func.sum(case((kept, Attribution.revenue), else_=0)), 0),
        )
        .select_from(Enrollment)
        .join(Attribution, Attribution.enrollment_id == Enrollment.id)
    )
    rows = session.execute(_cohort(query, cohort).group_by(conv_day))
    return [(day_text(day) or "", int(n), int(revenue)) for day, n, revenue in rows]
