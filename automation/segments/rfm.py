"""RFM scores 1-5 from fixed, documented thresholds (the same in SQL and in Python).

Scores use fixed thresholds, not quantiles: a quantile score depends on the whole contact
base, so re-scoring one contact incrementally would disagree with a whole-base refresh the
moment anyone else bought something. Thresholds keep both evaluators deterministic.

    rfm_recency   from last_order_at:  <= 30 days ago: 5, <= 60: 4, <= 90: 3, <= 180: 2,
                                       older or never ordered: 1
    rfm_frequency from orders_count:   >= 10: 5, >= 5: 4, >= 3: 3, >= 2: 2, else 1
    rfm_monetary  from total_spent:    >= 20,000,000 VND: 5, >= 10,000,000: 4,
                                       >= 5,000,000: 3, >= 1,000,000: 2, else 1
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, literal

from automation.core.clock import ensure_utc
from automation.core.models import Contact

RECENCY_DAYS = (30, 60, 90, 180)  # scores 5, 4, 3, 2 at or below each bound
FREQUENCY_MIN = (10, 5, 3, 2)  # scores 5, 4, 3, 2 at or above each bound
MONETARY_MIN = (20_000_000, 10_000_000, 5_000_000, 1_000_000)  # VND


def recency_score(last_order_at: datetime | None, now: datetime) -> int:
    """5 (ordered in the last 30 days) .. 1 (over 180 days ago, or never)."""
    if last_order_at is None:
        return 1
    last = ensure_utc(last_order_at)
    for score, days in zip((5, 4, 3, 2), RECENCY_DAYS, strict=True):
        if last >= now - timedelta(days=days):
            return score
    return 1


def _at_least_score(value: int | None, bounds: tuple[int, ...]) -> int:
    for score, bound in zip((5, 4, 3, 2), bounds, strict=True):
        if value is not None and value >= bound:
            return score
    return 1


def frequency_score(orders_count: int | None) -> int:
    """5 (10+ orders) .. 1 (0-1 orders)."""
    return _at_least_score(orders_count, FREQUENCY_MIN)


def monetary_score(total_spent: int | None) -> int:
    """5 (20,000,000 VND or more) .. 1 (under 1,000,000 VND)."""
    return _at_least_score(total_spent, MONETARY_MIN)


def score(name: str, contact: Any, now: datetime) -> int:
    """The named score (rfm_recency | rfm_frequency | rfm_monetary) for a contact row."""
    if name == "rfm_recency":
        return recency_score(contact.last_order_at, now)
    if name == "rfm_frequency":
        return frequency_score(contact.orders_count)
    return monetary_score(contact.total_spent)


def score_sql(name: str, now: datetime) -> ColumnElement[int]:
    """The named score as a SQL CASE over the contacts table (never NULL)."""
    if name == "rfm_recency":
        column: Any = Contact.last_order_at
        whens = [
            (column >= now - timedelta(days=days), literal(score))
            for score, days in zip((5, 4, 3, 2), RECENCY_DAYS, strict=True)
        ]
        return case(*whens, else_=literal(1))
    column = Contact.orders_count if name == "rfm_frequency" else Contact.total_spent
    bounds = FREQUENCY_MIN if name == "rfm_frequency" else MONETARY_MIN
    whens = [
        (column >= bound, literal(score)) for score, bound in zip((5, 4, 3, 2), bounds, strict=True)
    ]
    return case(*whens, else_=literal(1))
