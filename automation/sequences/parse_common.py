"""Sequence parsing helpers: context, lines, keys, durations, filters, trigger, exits."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from collections.abc import Sequence as Seq
from datetime import timedelta
from typing import Any

from automation.core.events import ALL_TYPES
from automation.dsl.durations import DurationError, parse_duration
from automation.dsl.filters import FilterError, PropertyFilter, parse_filter
from automation.dsl.yamlload import LineDict, LineList, plain
from automation.sequences.steps import (
    EventTrigger,
    ExitCondition,
    Reentry,
    SegmentTrigger,
    SequenceError,
    Step,
    Trigger,
)

KEY_RE = re.compile(r"^[a-z][a-z0-9_\-]*$")
LABEL_RE = re.compile(r"^[a-z][a-z0-9_]*$")
TEMPLATE_RE = re.compile(r"^[a-z0-9_\-]+/[a-z0-9_\-]+$")


class Ctx:
    """Where we are: the file name, for errors."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.ids: dict[str, tuple[str, Step | None, int]] = {}
        self.send_seen = False
        self.pending_refs: list[tuple[str, int]] = []

    def error(self, line: int, message: str, fix: str = "") -> SequenceError:
        return SequenceError(self.file, line, message, fix)

    def where(self, line: int) -> str:
        return f"{self.file}:{line}" if line else self.file


def line_at(container: Any, key: str | int) -> int:
    if isinstance(container, LineDict) and isinstance(key, str):
        return container.line_of(key)
    if isinstance(container, LineList) and isinstance(key, int):
        return container.line_of(key)
    return int(getattr(container, "line", 0))


def suggest(word: str, choices: Seq[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    if close:
        return f'did you mean "{close[0]}"? Allowed: {", ".join(choices)}'
    return f"allowed: {', '.join(choices)}"


def check_keys(ctx: Ctx, data: dict[str, Any], allowed: Seq[str], what: str) -> None:
    for key in data:
        if key not in allowed:
            raise ctx.error(
                line_at(data, key), f"unknown key {key!r} in {what}", suggest(key, allowed)
            )


def need_mapping(ctx: Ctx, value: Any, line: int, what: str, example: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ctx.error(line, f"{what} must be a mapping, got {kind_of(value)}", f"write {example}")
    return value


def need_text(ctx: Ctx, value: Any, line: int, what: str, example: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(line, f"{what} must be a non-empty text, got {kind_of(value)}", example)
    return value.strip()


def kind_of(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def need_duration(ctx: Ctx, value: Any, line: int, what: str) -> timedelta:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise ctx.error(line, f"{what}: {exc.problem}", exc.fix) from None


def need_event_type(ctx: Ctx, value: Any, line: int) -> str:
    name = need_text(ctx, value, line, "event", "write an event type such as order.created")
    if name not in ALL_TYPES:
        raise ctx.error(line, f"unknown event type {name!r}", suggest(name, sorted(ALL_TYPES)))
    return name


def parse_filters(ctx: Ctx, value: Any, line: int) -> tuple[PropertyFilter, ...]:
    """A ``where:`` list (or one mapping) of property filters, read by the dsl parser."""
    example = "where: [{property: total, gte: 1000000}]"
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ctx.error(line, f"where must be a list of filters, got {kind_of(value)}", example)
    result = []
    for index, item in enumerate(value):
        item_line = line_at(value, index) or line
        try:
            where = ctx.where(item_line)
            result.append(parse_filter(plain(item), where, _key_where(ctx, item, item_line)))
        except FilterError as exc:
            tail = exc.where.rpartition(":")[2]
            raise ctx.error(
                int(tail) if tail.isdigit() else item_line, exc.message, exc.fix
            ) from None
    return tuple(result)


def _key_where(ctx: Ctx, item: Any, fallback: int) -> Callable[[str], str]:
    return lambda key: ctx.where(line_at(item, key) or fallback)


def parse_trigger(ctx: Ctx, value: Any, line: int) -> Trigger:
    example = "trigger: {event: cart.abandoned} or trigger: {segment: leads_not_buying_3d}"
    data = need_mapping(ctx, value, line, "trigger", example)
    if "segment" in data:
        check_keys(ctx, data, ("segment",), "trigger")
        key = need_text(ctx, data["segment"], line_at(data, "segment"), "trigger segment", example)
        return SegmentTrigger(key)
    if "event" not in data:
        raise ctx.error(line, "trigger needs event: or segment:", example)
    check_keys(ctx, data, ("event", "where"), "trigger")
    event = need_event_type(ctx, data["event"], line_at(data, "event"))
    return EventTrigger(event, parse_filters(ctx, data.get("where"), line_at(data, "where")))


def parse_reentry(ctx: Ctx, value: Any, line: int) -> Reentry:
    fix = 'write never, always or "after 7d"'
    if value is None or value == "never":
        return Reentry("never")
    if value == "always":
        return Reentry("always")
    if isinstance(value, str) and value.strip().startswith("after "):
        return Reentry("after", need_duration(ctx, value.strip()[6:].strip(), line, "reentry"))
    raise ctx.error(line, f"reentry {value!r} is not understood", fix)


def parse_exit_on(ctx: Ctx, value: Any, line: int) -> tuple[ExitCondition, ...]:
    example = "exit_on: [{event: order.created, as: converted}]"
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ctx.error(line, f"exit_on must be a list, got {kind_of(value)}", example)
    result = []
    for index, item in enumerate(value):
        item_line = line_at(value, index) or line
        data = need_mapping(ctx, item, item_line, "an exit_on entry", example)
        check_keys(ctx, data, ("event", "as", "where", "same"), "exit_on")
        if "event" not in data:
            raise ctx.error(item_line, "exit_on entry needs event:", example)
        event = need_event_type(ctx, data["event"], line_at(data, "event"))
        reason = event
        if "as" in data:
            reason = need_text(ctx, data["as"], line_at(data, "as"), "as", "write as: converted")
        result.append(
            ExitCondition(
                event,
                reason,
                parse_filters(ctx, data.get("where"), line_at(data, "where")),
                parse_same(ctx, data),
            )
        )
    return tuple(result)


def parse_same(ctx: Ctx, spec: dict[str, Any]) -> tuple[str, ...] | None:
    """``same: [order_id]``: properties that must equal the trigger event's (None: default)."""
    if "same" not in spec:
        return None
    value = spec["same"]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ctx.error(
            line_at(spec, "same"),
            "same must be a property name or a list of them",
            "write same: [order_id] (or same: [] to match any event of the contact)",
        )
    return tuple(values)
