"""The one property filter: one operator set, one parser, one Python matcher."""

from __future__ import annotations

import pytest

from automation.dsl.filters import OPERATORS, FilterError, PropertyFilter, parse_filter


def test_operator_set_is_the_union() -> None:
    assert set(OPERATORS) == {"eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains",
                              "exists"}  # fmt: skip


def test_parse_and_match() -> None:
    f = parse_filter({"property": "source", "not_in": ["pos", "manual"]}, "x.yaml:3")
    assert f == PropertyFilter("source", "not_in", ("pos", "manual"))
    assert f.path == ("source",)
    assert f.matches({"source": "web"}) and f.matches({})
    assert not f.matches({"source": "pos"})
    total = parse_filter({"property": "order.total", "gte": 1_000_000}, "x.yaml:3")
    assert total.matches({"order": {"total": 1_500_000}})
    assert not total.matches({"order": {"total": 999_999}})


@pytest.mark.parametrize(
    ("item", "needle"),
    [
        ({"property": "total", "gtee": 1}, "unknown operator 'gtee'; did you mean \"gte\"?"),
        ({"property": "total", "gte": "many"}, "gte needs a number"),
        ({"property": "total", "not_in": "pos"}, "not_in needs a list"),
        ({"property": "total"}, "needs exactly one operator, got 0"),
        ({"property": "a b", "eq": 1}, "bad property name 'a b'"),
        ({"gte": 1}, "each where filter is {property: NAME, OPERATOR: VALUE}"),
    ],
)
def test_bad_filters_name_where_and_fix(item: dict[str, object], needle: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(item, "x.yaml:7")
    assert str(info.value).startswith("x.yaml:7: ")
    assert needle in str(info.value)
