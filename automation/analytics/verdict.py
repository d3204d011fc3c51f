"""A/B verdicts: name a winner only past a minimum sample and significance."""

from __future__ import annotations

from typing import Any

from automation.analytics.stats import rate, sample_size_per_arm, two_proportion_test

MIN_PER_ARM = 100
ALPHA = 0.05
METRICS = (("conversion", "converted"), ("click", "clicked"))


def _percent(value: float) -> str:
    return f"{value * 100:.1f}%"


def ab_verdict(arms: list[dict[str, Any]], min_per_arm: int = MIN_PER_ARM) -> dict[str, Any]:
    """Compare the two best arms on conversion rate, then click rate (two-proportion z-test).

    Returns winner (arm name or None), metric, p-values and a one-line text saying either
    who won or what it would take (approximate contacts per arm).
    """
    result: dict[str, Any] = {"winner": None, "metric": None, "p_values": {}}
    result["needed_per_arm"] = None
    if len(arms) < 2:
        result["text"] = "no verdict: fewer than two arms have contacts"
        return result
    smallest = min(arm["enrolled"] for arm in arms)
    needed: list[int] = []
    for metric, field in METRICS:
        ranked = sorted(arms, key=lambda arm: rate(arm[field], arm["enrolled"]), reverse=True)
        best, other = ranked[0], ranked[1]
        test = two_proportion_test(best[field], best["enrolled"], other[field], other["enrolled"])
        result["p_values"][metric] = round(test.p_value, 6)
        if smallest >= min_per_arm and test.p_value < ALPHA and result["winner"] is None:
            result["winner"], result["metric"] = best["arm"], metric
            result["text"] = (
                f"{best['arm']} wins on {metric} rate ({_percent(test.p1)} vs "
                f"{_percent(test.p2)}, p={test.p_value:.3f})"
            )
        size = sample_size_per_arm(test.p1, test.p2)
        if size is not None:
            needed.append(size)
    if result["winner"] is None:
        want = max(min_per_arm, min(needed)) if needed else None
        result["needed_per_arm"] = want
        if want is None:
            result["text"] = (
                f"no winner yet: no difference observed ({smallest} per arm; "
                f"at least {min_per_arm} per arm needed)"
            )
        else:
            result["text"] = (
                f"no winner yet: needs about {want} contacts per arm (smallest arm: {smallest})"
            )
    return result
