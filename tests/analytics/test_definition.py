"""goal:, attribution: and holdout: in sequence YAML: defaults, and errors naming file:line."""

from __future__ import annotations

from datetime import timedelta

import pytest

from automation.analytics.holdout import holdout_bucket, in_holdout
from automation.analytics.stats import newcombe, sample_size_per_arm, two_proportion_test, wilson
from automation.sequences.schema import SequenceError, parse_sequence_text

BASE = """sequence: promo
trigger: {event: lead.captured}
steps: [{send: {channel: email, template: promo/offer}}]
"""


def test_defaults_marketing_any_order_in_5_days_transactional_no_goal() -> None:
    marketing = parse_sequence_text(BASE).analytics
    assert marketing.goal is not None
    assert (marketing.goal.event, marketing.goal.within) == ("order.created", timedelta(days=5))
    assert (marketing.click_window, marketing.view_window) == (timedelta(days=5), timedelta(1))
    assert marketing.holdout == 0
    assert parse_sequence_text(BASE + "purpose: transactional\n").analytics.goal is None


def test_declared_goal_windows_and_holdout() -> None:
    text = BASE + (
        "goal: {event: order.paid, where: [{property: total, gte: 500000}], within: 7d}\n"
        "attribution: {click_window: 3d, view_window: 12h}\n"
        "holdout: 10%\n"
    )
    analytics = parse_sequence_text(text).analytics
    assert analytics.goal is not None
    assert (analytics.goal.event, analytics.goal.within) == ("order.paid", timedelta(days=7))
    assert len(analytics.goal.where) == 1
    assert (analytics.click_window, analytics.view_window) == (timedelta(3), timedelta(hours=12))
    assert analytics.holdout == 10.0


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("holdout: lots\n", "promo.yaml:4: holdout 'lots' is not a percentage"),
        ("holdout: 95%\n", "promo.yaml:4: holdout '95%' must be between 0% and 90%"),
        ("purpose: transactional\nholdout: 5%\n", "promo.yaml:5: holdout is only for marketing"),
        ("goal: {event: order.creatd}\n", "promo.yaml:4: goal event 'order.creatd' is not"),
        ("goal: {event: message.clicked}\n", "is not a shop or contact event"),
        ("goal: {within: soon}\n", "promo.yaml:4: goal within: cannot read duration"),
        ("goal: {event: order.created, when: 2d}\n", "unknown key 'when' in goal"),
        ("attribution: {click_window: 200d}\n", "click_window must be more than 0 and at most"),
        ("attribution: 5d\n", "promo.yaml:4: attribution must be a mapping"),
        ("goal: {where: [{property: total, bigger: 5}]}\n", "unknown operator 'bigger'"),
    ],
)
def test_bad_analytics_keys_name_file_line_and_fix(extra: str, expected: str) -> None:
    with pytest.raises(SequenceError) as caught:
        parse_sequence_text(BASE + extra, "promo.yaml")
    message = str(caught.value)
    assert expected in message and "Fix:" in message and "\n" not in message


def test_holdout_draw_is_stable_and_about_the_share() -> None:
    assert holdout_bucket("promo", 7) == holdout_bucket("promo", 7)
    held = sum(in_holdout("promo", contact, 10.0) for contact in range(1, 5001))
    assert 400 <= held <= 600
    assert not any(in_holdout("promo", contact, 0.0) for contact in range(1, 200))


def test_statistics_match_published_examples() -> None:
    low, high = wilson(81, 263)  # Wilson (1927) / Newcombe (1998) example
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    diff, low, high = newcombe(56, 70, 48, 80)  # Newcombe (1998) method 10 example
    assert (round(diff, 4), round(low, 4), round(high, 4)) == (0.2, 0.0524, 0.3339)
    assert two_proportion_test(60, 120, 30, 120).p_value < 0.001
    assert two_proportion_test(5, 10, 5, 10).p_value == 1.0
    assert sample_size_per_arm(0.10, 0.15) == 686  # the textbook value
    assert sample_size_per_arm(0.2, 0.2) is None
