"""Segment SQL with JSON tests is cached like any statement, and reuse keeps its values.

`PerDialect` (a JSON or substring test written per backend) used to opt out of
SQLAlchemy's statement cache, so every refresh of such a segment compiled its SQL again.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from automation.segments import compile_rule, load_rule
from tests.segments.data import NOW, make_contact


def members(session: Session, rule: dict[str, object]) -> set[int]:
    return set(session.scalars(compile_rule(load_rule(rule), NOW)))


def test_json_rules_are_cacheable_and_reuse_gives_each_value_its_members(
    session: Session,
) -> None:
    gold_contact = make_contact(
        session, email="g@shop.vn", attributes={"tier": "gold", "n": 5}, tags=["vip"]
    )
    silver_contact = make_contact(
        session, email="s@shop.vn", attributes={"tier": "silver", "n": 2}, tags=["new"]
    )
    session.flush()
    gold, silver = gold_contact.id, silver_contact.id
    shape = tier_and_tag("gold", "vip")
    assert compile_rule(load_rule(shape), NOW)._generate_cache_key() is not None
    expected = [
        (tier_and_tag("gold", "vip"), {gold}),
        (tier_and_tag("silver", "new"), {silver}),
        ({"field": "attributes.n", "gte": 3}, {gold}),
        ({"field": "attributes.n", "lt": 3}, {silver}),
        ({"field": "attributes.tier", "contains": "ilv"}, {silver}),
        ({"field": "attributes.tier", "contains": "ol"}, {gold}),
    ]
    # the same shapes, one after another with other values: each gets its own members
    for _ in range(2):
        for rule, contacts in expected:
            assert members(session, rule) == contacts, rule


def tier_and_tag(tier: str, tag: str) -> dict[str, object]:
    return {
        "all": [{"field": "attributes.tier", "eq": tier}, {"field": "tags", "contains": tag}]
    }
