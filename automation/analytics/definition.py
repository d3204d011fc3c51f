"""The analytics keys of a sequence: ``goal:``, ``attribution:`` and ``holdout:``.

    goal: {event: order.created, where: [{property: total, gte: 500000}], within: 7d}
    attribution: {click_window: 5d, view_window: 1d}
    holdout: 10%

Marketing sequences without ``goal:`` measure any order within 5 days; transactional
sequences measure no goal unless they declare one. A holdout is for marketing only.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from automation.core.events import ALL_TYPES, ORDER_CREATED
from automation.dsl.durations import DurationError, parse_duration

#: The top-level sequence keys this module reads.
KEYS = ("goal", "attribution", "holdout")
MAX_WINDOW = timedelta(days=90)
#: Internal and message events are not goals (the conversions handler skips them).
NOT_GOALS = ("message.", "segment.")
DEFAULT_GOAL_WITHIN = timedelta(days=5)
DEFAULT_CLICK_WINDOW = timedelta(days=5)
DEFAULT_VIEW_WINDOW = timedelta(days=1)

#: (line, message, fix) -> the caller's error (SequenceError naming file:line).
ErrorFactory = Callable[[int, str, str], Exception]
#: (value, line) -> parsed property filters (the sequence schema's ``where:`` parser).
FilterParser = Callable[[Any, int], tuple[Any, ...]]


@dataclass(frozen=True)
class Goal:
    """The event that counts as a conversion within ``within`` of entering."""

    event: str
    where: tuple[Any, ...] = ()
    within: timedelta = DEFAULT_GOAL_WITHIN


@dataclass(frozen=True)
class Analytics:
    """A sequence's goal, attribution windows and holdout share (percent)."""

    goal: Goal | None = Goal(ORDER_CREATED)
    click_window: timedelta = DEFAULT_CLICK_WINDOW
    view_window: timedelta = DEFAULT_VIEW_WINDOW
    holdout: float = 0.0


def _line(data: Any, key: str, default: int) -> int:
    line_of = getattr(data, "line_of", None)
    return int(line_of(key)) if callable(line_of) else default


def _window(value: Any, line: int, what: str, error: ErrorFactory) -> timedelta:
    try:
        window = parse_duration(value)
    except DurationError as exc:
        raise error(line, f"{what}: {exc.problem}", exc.fix) from None
    if window <= timedelta(0) or window > MAX_WINDOW:
        raise error(line, f"{what} must be more than 0 and at most 90d", f"write {what}: 5d")
    return window


def _mapping(
    value: Any, line: int, what: str, allowed: tuple[str, ...], example: str, error: ErrorFactory
) -> Any:
    if not isinstance(value, dict):
        raise error(line, f"{what} must be a mapping", f"write {example}")
    for key in value:
        if key not in allowed:
            where = _line(value, key, line)
            raise error(where, f"unknown key {key!r} in {what}", f"allowed: {', '.join(allowed)}")
    return value


def _goal(value: Any, line: int, error: ErrorFactory, filters: FilterParser) -> Goal:
    example = "goal: {event: order.created, where: [...], within: 7d}"
    spec = _mapping(value, line, "goal", ("event", "where", "within"), example, error)
    event = spec.get("event", ORDER_CREATED)
    if not isinstance(event, str) or event not in ALL_TYPES or event.startswith(NOT_GOALS):
        at = _line(spec, "event", line)
        fix = "write a shop or contact event, e.g. event: order.created"
        raise error(at, f"goal event {event!r} is not a shop or contact event", fix)
    where = filters(spec.get("where"), _line(spec, "where", line)) if "where" in spec else ()
    within = DEFAULT_GOAL_WITHIN
    if "within" in spec:
        within = _window(spec["within"], _line(spec, "within", line), "goal within", error)
    return Goal(event, tuple(where), within)


def _holdout(value: Any, line: int, purpose: str, error: ErrorFactory) -> float:
    fix = "write holdout: 10% (a share between 0% and 90%)"
    text = str(value).strip()
    number = text[:-1].strip() if text.endswith("%") else text
    try:
        share = float(number)
    except ValueError:
        raise error(line, f"holdout {value!r} is not a percentage", fix) from None
    if isinstance(value, bool) or not 0 <= share <= 90:
        raise error(line, f"holdout {value!r} must be between 0% and 90%", fix)
    if share and purpose != "marketing":
        raise error(line, "holdout is only for marketing sequences", "remove holdout:")
    return share


def parse_analytics(
    top: Any, purpose: str, error: ErrorFactory, filters: FilterParser
) -> Analytics:
    """Validate the analytics keys of a loaded sequence mapping; errors name file:line."""
    goal: Goal | None = Goal(ORDER_CREATED) if purpose == "marketing" else None
    if top.get("goal") is not None:
        goal = _goal(top["goal"], _line(top, "goal", 0), error, filters)
    click, view = DEFAULT_CLICK_WINDOW, DEFAULT_VIEW_WINDOW
    if top.get("attribution") is not None:
        line = _line(top, "attribution", 0)
        example = "attribution: {click_window: 5d, view_window: 1d}"
        keys = ("click_window", "view_window")
        spec = _mapping(top["attribution"], line, "attribution", keys, example, error)
        if "click_window" in spec:
            where = _line(spec, "click_window", line)
            click = _window(spec["click_window"], where, "click_window", error)
        if "view_window" in spec:
            where = _line(spec, "view_window", line)
            view = _window(spec["view_window"], where, "view_window", error)
    holdout = 0.0
    if top.get("holdout") is not None:
        holdout = _holdout(top["holdout"], _line(top, "holdout", 0), purpose, error)
    return Analytics(goal, click, view, holdout)
