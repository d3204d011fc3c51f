"""A rule compiled once (prepare_rule, `now` as parameters) selects at every instant what
compile_rule selects when compiled for that instant."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session

from automation.segments import compile_rule, load_rule
from automation.segments.compile import prepare_rule
from tests.segments.data import NOW, add_engagement, add_event, ago, make_contact

RULES: list[dict[str, Any]] = [
    {"performed": "order.created", "within": "7d"},
    {"any": [{"performed": "order.created", "within": "3d"},
             {"field": "last_order_at", "within": "10d"}]},
    {"all": [{"field": "last_order_at", "more_than_ago": "5d"},
             {"not": {"performed": "cart.updated", "within": "2d"}}]},
    {"opened": "any", "within": "4d"},
    {"field": "last_engaged_at.email", "more_than_ago": "6d"},
    {"field": "rfm_recency", "gte": 3},
]


def _world(session: Session) -> None:
    for days in (1, 4, 8, 12, 40):
        contact = make_contact(session, email=f"c{days}@shop.vn", last_order_at=ago(days=days))
        add_event(session, contact, "order.created", ago(days=days))
        add_event(session, contact, "cart.updated", ago(days=days / 2))
        add_engagement(session, contact, "email", "opened", ago(days=days))
    session.flush()


@pytest.mark.parametrize("rule", RULES)
def test_prepared_rule_agrees_with_compile_rule_at_each_instant(
    session: Session, rule: dict[str, Any]
) -> None:
    _world(session)
    parsed = load_rule(rule)
    prepared = prepare_rule(parsed)
    seen = set()
    for later in (0, 2, 5, 9, 30, 120, 400):  # one statement, reused at instants far apart
        at = NOW + timedelta(days=later)
        expected = set(session.scalars(compile_rule(parsed, at)))
        got = set(session.scalars(prepared.statement, prepared.params(at)))
        assert got == expected, (rule, later)
        seen.add(frozenset(got))
    assert len(seen) > 1, f"{rule}: the instants chosen should change the members"
