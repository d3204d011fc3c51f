"""RFM scores: the SQL compiler and the incremental evaluator agree at every threshold,
for every operator, including contacts without the value (score 1)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from automation.core.models import Contact
from automation.segments import compile_rule, load_rule, matches
from tests.segments.data import NOW

SPENT = [None, 0, 999_999, 1_000_000, 4_999_999, 5_000_000, 10_000_000, 19_999_999, 20_000_000]
COUNTS = [None, 0, 1, 2, 3, 4, 5, 9, 10, 11]
DAYS_AGO = [None, 0, 30, 31, 60, 61, 90, 91, 180, 181, 400]
VALUES = [1, 2, 3, 4, 5]  # the rule parser accepts scores 1 to 5


@pytest.mark.parametrize("field", ["rfm_monetary", "rfm_frequency", "rfm_recency"])
def test_every_threshold_and_operator_agrees(session: Session, field: str) -> None:
    rows = [
        Contact(email=f"r{i}@x.vn", total_spent=SPENT[i % len(SPENT)],
                orders_count=COUNTS[i % len(COUNTS)],
                last_order_at=None if DAYS_AGO[i % len(DAYS_AGO)] is None
                else NOW - timedelta(days=DAYS_AGO[i % len(DAYS_AGO)]))  # type: ignore[operator]
        for i in range(len(SPENT) * len(COUNTS))
    ]
    session.add_all(rows)
    session.commit()
    ids = [row.id for row in rows]
    for op in ("gte", "gt", "lte", "lt", "eq", "ne"):
        for value in VALUES:
            rule = load_rule({"field": field, op: value})
            by_sql = set(session.scalars(compile_rule(rule, NOW)))
            by_python = {cid for cid in ids if matches(session, rule, cid, NOW)}
            assert by_sql == by_python, (field, op, value)

