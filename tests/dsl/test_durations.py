"""The one duration grammar: every unit, combinations, positive and at most ten years."""

from __future__ import annotations

from datetime import timedelta

import pytest

from automation.core.errors import DefinitionError
from automation.dsl.durations import MAX_DURATION, DurationError, parse_duration
from automation.segments.rules import RuleError, load_rule


def test_one_grammar_for_segments_and_sequences() -> None:
    assert parse_duration("30s") == timedelta(seconds=30)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(weeks=2)
    # segments now read the same grammar (they used to refuse s and 1h30m)
    rule = load_rule({"field": "last_order_at", "within": "1h30m"})
    assert rule.compare.value == timedelta(minutes=90)  # type: ignore[union-attr]
    assert load_rule({"opened": "email", "within": "45s"}).within == timedelta(seconds=45)  # type: ignore[union-attr]


def test_durations_are_bounded_to_ten_years() -> None:
    assert parse_duration("3650d") <= MAX_DURATION
    for text in ("99999999d", "523w", "3654d", "999999999999999999999w"):
        with pytest.raises(DurationError, match="longer than 10 years"):
            parse_duration(text)


def test_duration_error_is_a_definition_error() -> None:
    with pytest.raises(DefinitionError):
        parse_duration("soon")
    with pytest.raises(RuleError) as info:
        load_rule({"performed": "order.created", "within": "99999999d"}, where="vip.yaml:4")
    assert str(info.value).startswith("vip.yaml:4: bad duration '99999999d'")
    assert "\n" not in str(info.value)
