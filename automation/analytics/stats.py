"""Small statistics for the report: proportion intervals, two-proportion tests, sample sizes.

Wilson for one rate, Newcombe (hybrid Wilson) for a difference of two rates, the pooled
two-proportion z-test for A/B arms, and the classic per-arm sample size for 80% power.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054
Z80 = 0.8416212335729143


def rate(hits: int, total: int) -> float:
    """hits / total, 0.0 for an empty group."""
    return hits / total if total else 0.0


def wilson(hits: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion (0, 0 for an empty group)."""
    if total == 0:
        return (0.0, 0.0)
    p = hits / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    return (max(0.0, centre - half), min(1.0, centre + half))


def newcombe(hits1: int, n1: int, hits2: int, n2: int) -> tuple[float, float, float]:
    """Difference p1 - p2 with Newcombe's 95% interval (method 10, from Wilson intervals)."""
    p1, p2 = rate(hits1, n1), rate(hits2, n2)
    l1, u1 = wilson(hits1, n1)
    l2, u2 = wilson(hits2, n2)
    diff = p1 - p2
    low = diff - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    high = diff + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    return (diff, low, high)


@dataclass(frozen=True)
class ZTest:
    """A two-proportion z-test result."""

    p1: float
    p2: float
    z: float
    p_value: float


def two_proportion_test(hits1: int, n1: int, hits2: int, n2: int) -> ZTest:
    """Pooled two-sided z-test of p1 == p2 (p-value 1.0 when undefined)."""
    p1, p2 = rate(hits1, n1), rate(hits2, n2)
    if n1 == 0 or n2 == 0:
        return ZTest(p1, p2, 0.0, 1.0)
    pooled = (hits1 + hits2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return ZTest(p1, p2, 0.0, 1.0)
    z = (p1 - p2) / se
    return ZTest(p1, p2, z, math.erfc(abs(z) / math.sqrt(2)))


def sample_size_per_arm(p1: float, p2: float) -> int | None:
    """Contacts per arm to detect p1 vs p2 at 5% significance and 80% power (None: no gap)."""
    if p1 == p2:
        return None
    pooled = (p1 + p2) / 2
    numerator = Z95 * math.sqrt(2 * pooled * (1 - pooled)) + Z80 * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2)
    )
    return math.ceil((numerator / (p1 - p2)) ** 2)
