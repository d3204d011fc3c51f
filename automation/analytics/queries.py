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
from automation.core.models import (
    Attribution,
    Enrollment,
    GoalConversion,
    Message,
    MessageEvent,
    Sequence,
)
from automation.core.vocabulary import ENGAGEMENT, Status

REPORT_TZ = "Asia/Ho_Chi_Minh"
#: Message flag -> the message-event types that set it (vocabulary meanings).
FLAGS: dict[str, tuple[str, ...]] = {
    "opened": ENGAGEMENT["opened"],
    "clicked": ENGAGEMENT["clicked"],
    "replied": ENGAGEMENT["replied"],
    "unsubscribed": ("unsubscribed",),
    "bounced": (Status.BOUNCED,),
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
    columns = [
        func.max(case((MessageEvent.type.in_(types), 1), else_=0)).label(name)
        for name, types in FLAGS.items()
    ]
    return select(MessageEvent.message_id, *columns).group_by(MessageEvent.message_id).subquery()


def step_counts(session: Session, cohort: Cohort) -> list[Any]:
    """(sequence, step_key, channel, sent, delivered, opened, clicked, replied, unsubscribed,
    bounced, complained, fallback) rows; a fallback message counts on its own channel."""
    flags = _message_flags()
    sent = Message.sent_at.is_not(None)
    query = (
        select(
            Sequence.key,
            Message.step_key,
            Message.channel,
            func.count(case((sent, 1))),
            func.count(case((and_(sent, Message.status.not_in(UNDELIVERED)), 1))),
            *(func.coalesce(func.sum(flags.c[name]), 0) for name in FLAGS),
            func.count(Message.fallback_from_id),
        )
        .select_from(Enrollment)
        .join(Message, Message.enrollment_id == Enrollment.id)
        .outerjoin(flags, flags.c.message_id == Message.id)
    )
    query = _cohort(query, cohort).group_by(Sequence.key, Message.step_key, Message.channel)
    return list(session.execute(query))


def fallback_sources(session: Session, cohort: Cohort) -> dict[str, int]:
    """Channel -> how many of its messages handed over to a fallback channel."""
    child = aliased(Message)
    query = (
        select(Message.channel, func.count(func.distinct(Message.id)))
        .select_from(Enrollment)
        .join(Message, Message.enrollment_id == Enrollment.id)
        .join(child, child.fallback_from_id == Message.id)
    )
    rows = session.execute(_cohort(query, cohort).group_by(Message.channel)).all()
    return {str(row[0]): int(row[1]) for row in rows}


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
    clicked = (
        select(Message.enrollment_id)
        .join(MessageEvent, MessageEvent.message_id == Message.id)
        .where(MessageEvent.type.in_(FLAGS["clicked"]))
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
    if is_postgres(session):
        return func.to_char(func.timezone(REPORT_TZ, column), "YYYY-MM-DD")
    return func.strftime("%Y-%m-%d", column, "+7 hours")


def daily_counts(session: Session, cohort: Cohort) -> dict[str, dict[str, int]]:
    """Day (Vietnam time) -> sent messages, attributed orders and their kept revenue."""
    days: dict[str, dict[str, int]] = {}
    sent_day = _day(session, Message.sent_at).label("day")
    query = (
        select(sent_day, func.count(Message.id))
        .select_from(Enrollment)
        .join(Message, Message.enrollment_id == Enrollment.id)
        .where(Message.sent_at.is_not(None))
    )
    for day, n in session.execute(_cohort(query, cohort).group_by(sent_day)):
        days.setdefault(str(day), {"sent": 0, "conversions": 0, "revenue": 0})["sent"] = int(n)
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
    for day, n, revenue in session.execute(_cohort(query, cohort).group_by(conv_day)):
        row = days.setdefault(str(day), {"sent": 0, "conversions": 0, "revenue": 0})
        row["conversions"], row["revenue"] = int(n), int(revenue)
    return dict(sorted(days.items()))
