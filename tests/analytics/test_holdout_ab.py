"""Holdout groups and A/B verdicts through enrolment, orders and `mactl report` (both backends)."""

from __future__ import annotations

import textwrap
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.analytics.holdout import in_holdout
from automation.core.clock import FrozenClock
from automation.core.config import Settings
from automation.core.db import session_factory
from automation.core.models import Enrollment, Message
from automation.runtime.scheduler import run_pass
from automation.sequences.schema import parse_sequence_text
from automation.sequences.store import apply_definition
from tests.analytics.helpers import feed, new_contacts, report_json, sequence

HOLDOUT = """
sequence: promo
purpose: marketing
trigger: {event: lead.captured}
holdout: 50%
steps:
  - send: {channel: email, template: promo/offer}
  - wait: 1d
  - send: {channel: email, template: promo/reminder}
"""
AB = """
sequence: ab_offer
purpose: marketing
trigger: {event: lead.captured}
goal: {event: order.created, where: [{property: total, gte: 100000}], within: 7d}
steps:
  - split:
      - {name: a, percent: 50, steps: [{send: {channel: email, template: ab/a}}]}
      - {name: b, percent: 50, steps: [{send: {channel: email, template: ab/b}}]}
"""


def _apply(session: Session, text: str) -> None:
    apply_definition(session, parse_sequence_text(textwrap.dedent(text), "test.yaml"))
    session.commit()


def _order(n: int, total: int = 300_000) -> dict[str, object]:
    return {"order_id": f"o{n}", "total": total, "currency": "VND"}


def test_holdout_half_receive_nothing_and_the_report_shows_both_groups(
    settings: Settings, session: Session, frozen_clock: FrozenClock
) -> None:
    _apply(session, HOLDOUT)
    people = new_contacts(session, 40)
    feed(session, [("lead.captured", c, {}) for c in people])
    held = {c for c in people if in_holdout("promo", c, 50.0)}
    assert 10 <= len(held) <= 30  # a stable draw, about half
    frozen_clock.advance(timedelta(days=1, hours=1))
    run_pass(session_factory(settings), frozen_clock.now())
    session.expire_all()
    receivers = set(session.scalars(select(Message.contact_id)))
    assert receivers == set(people) - held  # held out: nothing, not even the reminder
    flags = {
        e.contact_id: bool(e.context.get("holdout")) for e in session.scalars(select(Enrollment))
    }
    assert {c for c, flag in flags.items() if flag} == held
    # Every third contact orders a day later (goal: any order within 5 days).
    buyers = people[::3]
    feed(session, [("order.created", c, _order(c)) for c in buyers])
    late = people[1]
    frozen_clock.advance(timedelta(days=6))
    feed(session, [("order.created", late, _order(9999))])  # outside the goal window

    promo = sequence(report_json(), "promo")
    assert (promo["enrolled"], promo["held_out"]) == (40, len(held))
    groups = promo["holdout"]
    assert groups["holdout"]["enrolled"] == len(held)
    assert groups["treated"]["enrolled"] == 40 - len(held)
    assert groups["holdout"]["converted"] == len(held & set(buyers))
    assert groups["treated"]["converted"] == len(set(buyers) - held)
    low, high = groups["lift"]["interval"]
    assert low <= groups["lift"]["difference"] <= high
    assert promo["sent"] == 0  # nothing delivered in this test: rows stay queued


def _ab_run(session: Session, people: int, rate_a: float, rate_b: float) -> dict[str, object]:
    _apply(session, AB)
    contacts = new_contacts(session, people)
    feed(session, [("lead.captured", c, {}) for c in contacts])
    arms = {e.contact_id: e.context["variants"]["0"] for e in session.scalars(select(Enrollment))}
    orders = []
    for arm, share in (("a", rate_a), ("b", rate_b)):
        members = [c for c in contacts if arms[c] == arm]
        orders += [("order.created", c, _order(c)) for c in members[: round(len(members) * share)]]
    small = [c for c in contacts if arms[c] == "b"][-1]
    orders.append(("order.created", small, _order(10**6, total=50_000)))  # below the goal
    feed(session, orders)
    return sequence(report_json(), "ab_offer")


def test_ab_names_the_winner_with_a_clear_difference_on_enough_contacts(
    session: Session, frozen_clock: FrozenClock
) -> None:
    result = _ab_run(session, 240, rate_a=0.10, rate_b=0.35)
    [split] = result["splits"]  # type: ignore[index]
    arms = {arm["arm"]: arm for arm in split["arms"]}
    assert arms["a"]["enrolled"] + arms["b"]["enrolled"] == 240
    assert min(arms["a"]["enrolled"], arms["b"]["enrolled"]) >= 100
    assert arms["b"]["conversion_rate"] > arms["a"]["conversion_rate"]
    verdict = split["verdict"]
    assert (verdict["winner"], verdict["metric"]) == ("b", "conversion")
    assert verdict["p_values"]["conversion"] < 0.05
    assert verdict["text"].startswith("b wins on conversion rate")


def test_ab_names_no_winner_with_too_few_contacts(
    session: Session, frozen_clock: FrozenClock
) -> None:
    result = _ab_run(session, 30, rate_a=0.10, rate_b=0.35)
    [split] = result["splits"]  # type: ignore[index]
    verdict = split["verdict"]
    assert verdict["winner"] is None
    assert verdict["needed_per_arm"] >= 100
    assert verdict["text"].startswith("no winner yet: needs about")
