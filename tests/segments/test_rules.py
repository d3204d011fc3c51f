"""Parsing and validation: the AST, and errors that name the file, the line and the fix."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from automation.segments.nodes import (
    All,
    Any_,
    EngagementCond,
    EventCond,
    FieldCond,
    InSegment,
    Not,
    ReachCond,
    RuleError,
    depends_on_time,
)
from automation.segments.rules import (
    load_rule,
    load_segment_file,
    load_segment_text,
    parse_duration,
)

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks" / "segments"


def _error(text: str, filename: str = "playbooks/segments/vip.yaml") -> str:
    with pytest.raises(RuleError) as info:
        load_segment_text(text, filename)
    return str(info.value)


def test_unknown_operator_names_file_line_and_choices() -> None:
    text = """segment: vip
name: Khách VIP
rule:
  all:
    - {field: orders_count, gte: 2}
    - field: total_spent
      gtee: 2000000
"""
    message = _error(text)
    assert message.startswith("playbooks/segments/vip.yaml:7: unknown operator 'gtee'")
    assert "did you mean 'gte'" in message
    choices = "use one of: eq, ne, in, not_in, contains, gt, gte, lt, lte, exists, before, after"
    assert choices in message


@pytest.mark.parametrize(
    ("rule_yaml", "line", "fragment"),
    [
        ("  {field: citty, eq: x}", 4, "unknown field 'citty'"),
        ("  {field: attributes.city, within: 7d}", 4, "operator 'within' does not apply"),
        ("  {field: last_order_at, more_than_ago: 90 days}", 4, "bad duration '90 days'"),
        ("  {field: orders_count, gte: many}", 4, "'gte' expects a number"),
        ("  {field: rfm_recency, eq: 7}", 4, "a score from 1 to 5"),
        ("  {performed: order.create}", 4, "did you mean 'order.created'"),
        ("  {not_performed: order.created, at_least: 2}", 4, "unexpected key 'at_least'"),
        ("  {performed: order.created, at_least: 0}", 4, "whole number >= 1"),
        ("  {opened: fax}", 4, "unknown channel 'fax'"),
        ("  {reachable: zalo_zns}", 4, "use one of: email, sms, zalo, messenger, any"),
        ("  {field: first_name, eq: An, ne: Bình}", 4, "one operator per condition"),
        ("  {field: first_name, eq: An, in_segment: vip}", 4, "one condition per mapping"),
        ("  {bogus: 1}", 4, "unknown condition 'bogus'"),
        ("  all: oops", 4, "'all' takes a list"),
        ("  all:\n    - {field: first_name}", 5, "needs an operator"),
        ("  all:\n    - not:\n        {in_segment: VIP!}", 6, "in_segment takes a segment key"),
        (
            "  performed: order.created\n  where:\n    - {property: total, gte: 2000000}\n"
            "    - {property: total, after: x}",
            7,
            "unknown operator 'after'; use one of eq, ne",
        ),
    ],
)
def test_errors_point_at_the_line(rule_yaml: str, line: int, fragment: str) -> None:
    text = f"segment: s\nname: Thử\nrule:\n{rule_yaml}\n"
    message = _error(text, "seg.yaml")
    assert message.startswith(f"seg.yaml:{line}: "), message
    assert fragment in message


def test_bad_yaml_and_bad_document() -> None:
    assert _error("segment: [unclosed\n", "x.yaml").startswith("x.yaml:2: invalid YAML")
    assert "missing 'rule'" in _error("segment: a\nname: A\n", "x.yaml")
    assert "bad segment key 'VIP Khách'" in _error("segment: VIP Khách\nname: A\nrule: {}\n")
    assert "unexpected key 'rules'" in _error("segment: a\nname: A\nrules: {}\n")


def test_where_without_lines_uses_given_location() -> None:
    with pytest.raises(RuleError) as info:
        load_rule({"field": "x"}, where="playbooks/sequences/nurture.yaml:12")
    assert str(info.value).startswith("playbooks/sequences/nurture.yaml:12: unknown field 'x'")


def test_ast_shapes() -> None:
    rule = load_rule(
        {
            "all": [
                {"field": "attributes.city", "in": ["Hà Nội", "HCM"]},
                {"field": "last_order_at", "more_than_ago": "90d"},
                {
                    "performed": "order.created",
                    "where": [{"property": "total", "gte": 2000000}],
                    "at_least": 2,
                    "within": "180d",
                },
                {"not_performed": "order.created", "within": "3d"},
                {"any": [{"clicked": "zalo", "within": "7d"}, {"reachable": "any"}]},
                {"not": {"in_segment": "vip"}},
                {"field": "created_at", "after": "2026-01-31"},
            ]
        }
    )
    assert isinstance(rule, All)
    city, lapsed, orders, no_order, anyof, notvip, created = rule.children
    assert isinstance(city, FieldCond) and city.path == ("city",) and city.kind == "json"
    assert city.compare.value == ("Hà Nội", "HCM")
    assert isinstance(lapsed, FieldCond) and lapsed.compare.value == timedelta(days=90)
    assert isinstance(orders, EventCond) and orders.at_least == 2 and not orders.negate
    assert orders.where[0].path == ("total",) and orders.within == timedelta(days=180)
    assert isinstance(no_order, EventCond) and no_order.negate
    assert isinstance(anyof, Any_)
    clicked, reach = anyof.children
    assert isinstance(clicked, EngagementCond) and clicked.channels == ("zalo_zns", "zalo_oa")
    assert isinstance(reach, ReachCond) and reach.channels == ("email", "sms", "zalo", "messenger")
    assert isinstance(notvip, Not) and isinstance(notvip.child, InSegment)
    # a bare date is midnight in Vietnam (UTC+7)
    assert isinstance(created, FieldCond)
    assert created.compare.value == datetime(2026, 1, 30, 17, 0, tzinfo=UTC)


def test_durations() -> None:
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("12h") == timedelta(hours=12)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration("30m") == timedelta(minutes=30)
    with pytest.raises(RuleError):
        parse_duration("0d")


def test_time_dependence() -> None:
    assert depends_on_time(load_rule({"field": "last_order_at", "within": "7d"}))
    assert depends_on_time(load_rule({"field": "rfm_recency", "gte": 3}))
    assert depends_on_time(load_rule({"not": {"performed": "order.created", "within": "3d"}}))
    assert not depends_on_time(load_rule({"performed": "order.created"}))
    assert not depends_on_time(load_rule({"field": "created_at", "after": "2026-01-01"}))
    assert not depends_on_time(load_rule({"reachable": "email"}))


def test_shipped_segments_parse() -> None:
    keys = set()
    for path in sorted(PLAYBOOKS.glob("*.yaml")):
        segment = load_segment_file(path)
        assert segment.key == path.stem
        assert segment.name and segment.description
        keys.add(segment.key)
    assert keys == {"reachable", "engaged_30d", "vip", "lapsed_90d", "leads_not_buying_3d"}
