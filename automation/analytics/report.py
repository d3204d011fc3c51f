"""The report's data: per sequence, per step, per arm and per channel, as plain JSON-ready dicts.

Counts come from the set-based queries in ``queries``; this module only arranges them,
adds rates, the holdout lift (Newcombe interval) and the A/B verdicts. Revenue is integer
VND, with ``*_text`` twins formatted by Babel (``1.250.000 ₫``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.analytics import queries as q
from automation.analytics.stats import newcombe, rate, wilson
from automation.analytics.verdict import MIN_PER_ARM, ab_verdict
from automation.core.models import Sequence, SequenceVersion
from automation.messages.filters import vnd
from automation.sequences.schema import SendStep, SequenceDefinition, SplitStep
from automation.sequences.store import version_definition

FUNNEL = ("sent", "delivered", "opened", "clicked", "replied", "unsubscribed")
STEP_FIELDS = (*FUNNEL, "bounced", "complained", "fallback")


def _rates(row: dict[str, Any], base: str = "sent") -> dict[str, float]:
    return {name: round(rate(row[name], row[base]), 4) for name in FUNNEL[1:]}


def _definitions(session: Session, key: str | None) -> dict[str, SequenceDefinition]:
    query = select(Sequence.key, SequenceVersion).join(
        SequenceVersion, SequenceVersion.id == Sequence.current_version_id
    )
    if key is not None:
        query = query.where(Sequence.key == key)
    return {k: version_definition(v) for k, v in session.execute(query)}


def _empty_step(step: str, channel: str, template: str | None) -> dict[str, Any]:
    row: dict[str, Any] = {"step": step, "channel": channel, "template": template}
    row.update({name: 0 for name in (*STEP_FIELDS, "converted", "revenue")})
    return row


@dataclass
class Tally:
    """Per sequence and (step, channel) rows, sends per day, and fallback hand-overs."""

    steps: dict[str, dict[tuple[str, str], dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    daily: dict[str, dict[str, int]] = field(
        default_factory=lambda: defaultdict(lambda: {"sent": 0, "conversions": 0, "revenue": 0})
    )
    handed_over: dict[str, int] = field(default_factory=lambda: defaultdict(int))


def _parent_channel(step_key: str, sends: dict[str, SendStep]) -> str | None:
    """The channel a fallback message took over from ("0#fallback:sms" -> the step's)."""
    parts = step_key.split("#fallback:")
    if len(parts) > 2:
        return parts[-2]
    step = sends.get(parts[0])
    return step.channel if step is not None else None


def _tally(session: Session, cohort: q.Cohort, definitions: dict[str, SequenceDefinition]) -> Tally:
    sends = {
        key: {pos: s for pos, s in d.all_steps() if isinstance(s, SendStep)}
        for key, d in definitions.items()
    }
    tally = Tally()

    def slot(key: str, step_key: str, channel: str) -> dict[str, Any]:
        base = step_key.split("#", 1)[0]
        found = tally.steps[key].get((base, channel))
        if found is None:
            step = sends.get(key, {}).get(base)
            found = _empty_step(base, channel, step.template if step else None)
            tally.steps[key][(base, channel)] = found
        return found

    for key, step_key, channel, day, total, sent, delivered, bounced in q.message_counts(
        session, cohort
    ):
        row = slot(key, step_key, channel)
        row["sent"] += int(sent)
        row["delivered"] += int(delivered)
        row["bounced"] += int(bounced)
        if "#fallback:" in step_key:
            row["fallback"] += int(total)
            parent = _parent_channel(step_key, sends.get(key, {}))
            if parent is not None:
                tally.handed_over[parent] += int(total)
        text = q.day_text(day)
        if text is not None:
            tally.daily[text]["sent"] += int(sent)
    for key, step_key, channel, *flags in q.engagement_counts(session, cohort):
        row = slot(key, step_key, channel)
        for name, value in zip(q.FLAGS, flags, strict=True):
            row[name] += int(value or 0)
    for key, step_key, channel, _orders, kept, revenue in q.attribution_counts(session, cohort):
        row = slot(key, step_key, channel)
        row["converted"] += int(kept)
        row["revenue"] += int(revenue)
    for day, n, revenue in q.daily_conversions(session, cohort):
        tally.daily[day]["conversions"] += n
        tally.daily[day]["revenue"] += revenue
    return tally


def _holdout(treated: dict[str, int], held: dict[str, int]) -> dict[str, Any] | None:
    if held["enrolled"] == 0:
        return None
    groups = {}
    for name, group in (("treated", treated), ("holdout", held)):
        low, high = wilson(group["converted"], group["enrolled"])
        groups[name] = {
            **group,
            "rate": round(rate(group["converted"], group["enrolled"]), 4),
            "interval": [round(low, 4), round(high, 4)],
        }
    diff, low, high = newcombe(
        treated["converted"], treated["enrolled"], held["converted"], held["enrolled"]
    )
    groups["lift"] = {"difference": round(diff, 4), "interval": [round(low, 4), round(high, 4)]}
    return groups


def _splits(
    session: Session,
    cohort: q.Cohort,
    key: str,
    definition: SequenceDefinition | None,
    steps: dict[tuple[str, str], dict[str, Any]],
    min_per_arm: int,
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for position, step in definition.all_steps() if definition else []:
        if not isinstance(step, SplitStep):
            continue
        counts = {arm: (n, conv, clicks) for arm, n, conv, clicks in
                  q.arm_counts(session, cohort, key, position)}  # fmt: skip
        arms = []
        for branch in step.branches:
            n, conv, clicks = counts.get(branch.name, (0, 0, 0))
            prefix = f"{position}.{branch.name}."
            revenue = sum(r["revenue"] for (s, _), r in steps.items() if s.startswith(prefix))
            arms.append({
                "arm": branch.name, "percent": branch.percent, "enrolled": int(n),
                "converted": int(conv), "clicked": int(clicks),
                "conversion_rate": round(rate(conv, n), 4), "click_rate": round(rate(clicks, n), 4),
                "revenue": revenue, "revenue_text": vnd(revenue),
            })  # fmt: skip
        found.append({"step": position, "arms": arms, "verdict": ab_verdict(arms, min_per_arm)})
    return found


def build_report(
    session: Session, cohort: q.Cohort, min_per_arm: int = MIN_PER_ARM
) -> dict[str, Any]:
    """The whole report for the cohort: sequences, steps, holdout, arms, channels, days."""
    definitions = _definitions(session, cohort.sequence_key)
    enrolled: dict[str, dict[bool, int]] = defaultdict(lambda: {True: 0, False: 0})
    for key, held, n in q.enrollment_counts(session, cohort):
        enrolled[key][bool(held)] += int(n)
    goals: dict[str, dict[bool, tuple[int, int]]] = defaultdict(dict)
    for key, held, n, revenue in q.goal_counts(session, cohort):
        goals[key][bool(held)] = (int(n), int(revenue))
    tally = _tally(session, cohort, definitions)
    steps = tally.steps
    sequences = []
    for key in sorted(set(definitions) | set(enrolled)):
        definition = definitions.get(key)
        step_rows = sorted(steps.get(key, {}).values(), key=lambda r: (r["step"], r["channel"]))
        for row in step_rows:
            row["rates"] = _rates(row)
            row["revenue_text"] = vnd(row["revenue"])
        row = {"key": key, "purpose": definition.purpose if definition else None}
        row["enrolled"] = enrolled[key][False] + enrolled[key][True]
        row["held_out"] = enrolled[key][True]
        for name in (*FUNNEL, "converted", "revenue"):
            row[name] = sum(s[name] for s in step_rows)
        row["revenue_text"] = vnd(row["revenue"])
        row["rates"] = _rates(row)
        treated_goal = goals[key].get(False, (0, 0))
        row["goal_conversions"] = treated_goal[0]
        row["goal_revenue"] = treated_goal[1]
        row["holdout"] = _holdout(
            {"enrolled": enrolled[key][False], "converted": treated_goal[0]},
            {"enrolled": enrolled[key][True], "converted": goals[key].get(True, (0, 0))[0]},
        )
        row["splits"] = _splits(session, cohort, key, definition, steps.get(key, {}), min_per_arm)
        row["steps"] = step_rows
        sequences.append(row)
    return {
        "period": {
            "since": cohort.since.isoformat() if cohort.since else None,
            "until": cohort.until.isoformat() if cohort.until else None,
        },
        "sequences": sequences,
        "channels": _channels(tally),
        "daily": [{"date": d, **v} for d, v in sorted(tally.daily.items())],
        "totals": _totals(sequences),
    }


def _channels(tally: Tally) -> list[dict[str, Any]]:
    """Deliverability per channel: delivery, bounce, complaint and fallback rates."""
    fallbacks, steps = tally.handed_over, tally.steps
    totals: dict[str, dict[str, int]] = defaultdict(
        lambda: {"sent": 0, "delivered": 0, "bounced": 0, "complained": 0}
    )
    for by_step in steps.values():
        for (_, channel), step in by_step.items():
            for name in ("sent", "delivered", "bounced", "complained"):
                totals[channel][name] += step[name]
    found = []
    for channel in sorted(totals):
        row: dict[str, Any] = {"channel": channel, **totals[channel]}
        row["fallback"] = fallbacks.get(channel, 0)
        row["rates"] = {
            name: round(rate(row[name], row["sent"]), 4)
            for name in ("delivered", "bounced", "complained", "fallback")
        }
        found.append(row)
    return found


def _totals(sequences: list[dict[str, Any]]) -> dict[str, Any]:
    revenue = sum(s["revenue"] for s in sequences)
    return {
        "enrolled": sum(s["enrolled"] for s in sequences),
        "sent": sum(s["sent"] for s in sequences),
        "converted": sum(s["converted"] for s in sequences),
        "revenue": revenue,
        "revenue_text": vnd(revenue),
    }
