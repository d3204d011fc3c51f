"""Sequence YAML -> typed definition, with errors that name file, line and the fix.

See parse_sequence() for the accepted shape; the reference lives in the README.
"""

from __future__ import annotations

import difflib
import hashlib
import re
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from automation.analytics.definition import KEYS as ANALYTICS_KEYS
from automation.analytics.definition import Analytics, parse_analytics
from automation.core.events import ALL_TYPES
from automation.dsl.durations import DurationError, parse_duration
from automation.sequences import cursor as cur
from automation.sequences.yamlload import (
    LineDict,
    LineList,
    YamlError,
    canonical_json,
    load_yaml_file,
    load_yaml_text,
    plain,
)

CHANNELS = ("email", "sms", "zalo_zns", "zalo_oa", "messenger")
PURPOSES = ("marketing", "transactional")
ENGAGEMENT = ("clicked", "opened", "replied")
# {clicked: email} / {opened: any} are segment-rule engagement conditions, not step refs
RULE_CHANNELS = ("any", "email", "sms", "zalo", "zalo_zns", "zalo_oa", "messenger")
RESERVED_IDS = ("previous", *RULE_CHANNELS)
OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists")
OPERATOR_ALIASES = {"equals": "eq", "not_equals": "ne"}
_KEY = re.compile(r"^[a-z][a-z0-9_\-]*$")
_LABEL = re.compile(r"^[a-z][a-z0-9_]*$")
_TEMPLATE = re.compile(r"^[a-z0-9_\-]+/[a-z0-9_\-]+$")
TOP_KEYS = (
    "sequence",
    "name",
    "description",
    "purpose",
    "trigger",
    "audience",
    "reentry",
    "exit_on",
    "steps",
    *ANALYTICS_KEYS,
)
ACTIONS = ("wait", "wait_until", "send", "if", "split", "update", "exit")
EXTRA_KEYS: dict[str, tuple[str, ...]] = {
    "wait": (),
    "wait_until": ("on_event", "on_timeout"),
    "send": (),
    "if": ("then", "else"),
    "split": (),
    "update": (),
    "exit": (),
}


class SequenceError(ValueError):
    """A definition that cannot be used: ``file:line: problem. Fix: ...``."""

    def __init__(self, file: str, line: int, message: str, fix: str = "") -> None:
        self.file, self.line, self.message, self.fix = file, line, message, fix
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}" + (f". Fix: {fix}" if fix else ""))


# --------------------------------------------------------------------------- definitions


@dataclass(frozen=True)
class PropertyFilter:
    """One condition on an event property: ``{property: total, gte: 1000000}``."""

    property: str
    op: str
    value: Any

    def matches(self, properties: dict[str, Any]) -> bool:
        """True when the event properties satisfy this filter."""
        actual = _dig(properties, self.property)
        if self.op == "exists":
            return (actual is not None) == bool(self.value)
        if actual is None:
            return self.op == "ne" or self.op == "not_in"
        if self.op == "eq":
            return _same(actual, self.value)
        if self.op == "ne":
            return not _same(actual, self.value)
        if self.op == "in":
            return any(_same(actual, v) for v in self.value)
        if self.op == "not_in":
            return not any(_same(actual, v) for v in self.value)
        if self.op == "contains":
            if isinstance(actual, str):
                return str(self.value) in actual
            if isinstance(actual, list):
                return any(_same(item, self.value) for item in actual)
            return False
        left, right = _number(actual), _number(self.value)
        if left is None or right is None:
            return False
        return {
            "gt": left > right,
            "gte": left >= right,
            "lt": left < right,
            "lte": left <= right,
        }[self.op]


def _dig(properties: dict[str, Any], path: str) -> Any:
    value: Any = properties
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", ""))
        except ValueError:
            return None
    return None


def _same(actual: Any, expected: Any) -> bool:
    left, right = _number(actual), _number(expected)
    if left is not None and right is not None:
        return left == right
    return bool(actual == expected) or str(actual) == str(expected)


def filters_match(filters: Seq[PropertyFilter], properties: dict[str, Any]) -> bool:
    """True when every filter matches (an empty list matches everything)."""
    return all(f.matches(properties) for f in filters)


@dataclass(frozen=True)
class EventTrigger:
    """Enrol on an event of this type whose properties pass the filters."""

    event: str
    where: tuple[PropertyFilter, ...] = ()


@dataclass(frozen=True)
class SegmentTrigger:
    """Enrol when the contact enters the segment (a ``segment.entered`` event)."""

    segment: str


Trigger = EventTrigger | SegmentTrigger


@dataclass(frozen=True)
class Reentry:
    """never | always | after <duration> (counted from the previous entry)."""

    mode: Literal["never", "always", "after"]
    after: timedelta | None = None


@dataclass(frozen=True)
class ExitCondition:
    """End the enrollment at once when this event arrives; ``reason`` is the ``as:`` word."""

    event: str
    reason: str
    where: tuple[PropertyFilter, ...] = ()
    same: tuple[str, ...] | None = None


@dataclass(frozen=True)
class WaitStep:
    """Pause for a duration."""

    duration: timedelta
    id: str | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class WaitUntilStep:
    """Pause until an event (then ``on_event``) or the timeout (then ``on_timeout``)."""

    event: str
    timeout: timedelta
    where: tuple[PropertyFilter, ...] = ()
    on_event: tuple[Step, ...] = ()
    on_timeout: tuple[Step, ...] = ()
    id: str | None = None
    line: int = field(default=0, compare=False)
    same: tuple[str, ...] | None = None


@dataclass(frozen=True)
class SendStep:
    """Queue one message on a channel, with fallback channels tried in order."""

    channel: str
    template: str
    fallback: tuple[str, ...] = ()
    id: str | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class EngagementCondition:
    """``{clicked: previous}`` / ``{opened: <step id>}`` / ``{replied: previous}``."""

    kind: str
    step: str  # "previous" or a send step id


@dataclass(frozen=True)
class SegmentCondition:
    """Any segment rule, evaluated for the contact when the step runs."""

    rule_data: Any
    where: str


Condition = EngagementCondition | SegmentCondition


@dataclass(frozen=True)
class IfStep:
    """Branch on a condition."""

    condition: Condition
    then: tuple[Step, ...] = ()
    else_: tuple[Step, ...] = ()
    id: str | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class SplitBranch:
    """One arm of a split: its share in percent and its steps."""

    name: str
    percent: float
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class SplitStep:
    """Random split, stable per contact (hash of sequence key and contact id)."""

    branches: tuple[SplitBranch, ...]
    id: str | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class UpdateStep:
    """Set or unset contact attributes, add or remove tags."""

    set: dict[str, Any] = field(default_factory=dict)
    unset: tuple[str, ...] = ()
    add_tags: tuple[str, ...] = ()
    remove_tags: tuple[str, ...] = ()
    id: str | None = None
    line: int = field(default=0, compare=False)


@dataclass(frozen=True)
class ExitStep:
    """End the enrollment with a reason."""

    reason: str
    id: str | None = None
    line: int = field(default=0, compare=False)


Step = WaitStep | WaitUntilStep | SendStep | IfStep | SplitStep | UpdateStep | ExitStep


def branches(step: Step) -> list[tuple[str, tuple[Step, ...]]]:
    """The labelled child step lists of a step (empty for simple steps)."""
    if isinstance(step, IfStep):
        return [("then", step.then), ("else", step.else_)]
    if isinstance(step, WaitUntilStep):
        return [("on_event", step.on_event), ("on_timeout", step.on_timeout)]
    if isinstance(step, SplitStep):
        return [(b.name, b.steps) for b in step.branches]
    return []


def child_steps(step: Step, label: str) -> tuple[Step, ...] | None:
    """The steps of branch ``label`` of ``step``, or None if it has no such branch."""
    for name, kids in branches(step):
        if name == label:
            return kids
    return None


@dataclass(frozen=True)
class SequenceDefinition:
    """A validated sequence; ``raw`` is the plain data stored on the version."""

    key: str
    trigger: Trigger
    steps: tuple[Step, ...]
    purpose: str = "marketing"
    audience: str | None = None
    reentry: Reentry = Reentry("never")
    exit_on: tuple[ExitCondition, ...] = ()
    name: str | None = None
    description: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    file: str = field(default="<definition>", compare=False)
    step_ids: dict[str, str] = field(default_factory=dict, compare=False)
    analytics: Analytics = field(default=Analytics(), compare=False)

    @property
    def definition_hash(self) -> str:
        """sha256 of the canonical JSON of the raw definition (what versioning compares)."""
        return definition_hash(self.raw)

    def resolve(self, position: str) -> tuple[str, Step] | None:
        """The normalised cursor and the step to run at ``position`` (None: finished)."""
        return cur.resolve(self.steps, position, child_steps)

    def all_steps(self) -> list[tuple[str, Step]]:
        """Every (cursor, step) in document order."""
        return cur.walk(self.steps, branches)


def definition_hash(raw: Any) -> str:
    """sha256 hex of the canonical JSON of a raw definition."""
    return hashlib.sha256(canonical_json(raw).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- parsing


class _Ctx:
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


def _line(container: Any, key: str | int) -> int:
    if isinstance(container, LineDict) and isinstance(key, str):
        return container.line_of(key)
    if isinstance(container, LineList) and isinstance(key, int):
        return container.line_of(key)
    return int(getattr(container, "line", 0))


def _suggest(word: str, choices: Seq[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    if close:
        return f'did you mean "{close[0]}"? Allowed: {", ".join(choices)}'
    return f"allowed: {', '.join(choices)}"


def _check_keys(ctx: _Ctx, data: dict[str, Any], allowed: Seq[str], what: str) -> None:
    for key in data:
        if key not in allowed:
            raise ctx.error(
                _line(data, key), f"unknown key {key!r} in {what}", _suggest(key, allowed)
            )


def _mapping(ctx: _Ctx, value: Any, line: int, what: str, example: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ctx.error(line, f"{what} must be a mapping, got {_kind(value)}", f"write {example}")
    return value


def _string(ctx: _Ctx, value: Any, line: int, what: str, example: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ctx.error(line, f"{what} must be a non-empty text, got {_kind(value)}", example)
    return value.strip()


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _duration(ctx: _Ctx, value: Any, line: int, what: str) -> timedelta:
    try:
        return parse_duration(value)
    except DurationError as exc:
        raise ctx.error(line, f"{what}: {exc.problem}", exc.fix) from None


def _event_type(ctx: _Ctx, value: Any, line: int) -> str:
    name = _string(ctx, value, line, "event", "write an event type such as order.created")
    if name not in ALL_TYPES:
        raise ctx.error(line, f"unknown event type {name!r}", _suggest(name, sorted(ALL_TYPES)))
    return name


def _filters(ctx: _Ctx, value: Any, line: int) -> tuple[PropertyFilter, ...]:
    example = "where: [{property: total, gte: 1000000}]"
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ctx.error(line, f"where must be a list of filters, got {_kind(value)}", example)
    result = []
    for index, item in enumerate(value):
        item_line = _line(value, index) or line
        item = _mapping(ctx, item, item_line, "a where filter", example)
        prop = item.get("property")
        if not isinstance(prop, str) or not prop:
            raise ctx.error(item_line, "a where filter needs property:", example)
        ops = [k for k in item if k != "property"]
        if len(ops) != 1:
            raise ctx.error(
                item_line,
                f"filter on {prop!r} needs exactly one operator, got {len(ops)}",
                f"use one of {', '.join(OPERATORS)}",
            )
        op = OPERATOR_ALIASES.get(ops[0], ops[0])
        if op not in OPERATORS:
            raise ctx.error(
                _line(item, ops[0]), f"unknown operator {ops[0]!r}", _suggest(ops[0], OPERATORS)
            )
        operand = item[ops[0]]
        if op in ("in", "not_in") and not isinstance(operand, list):
            raise ctx.error(_line(item, ops[0]), f"{op} needs a list", f"write {op}: [a, b]")
        if op in ("gt", "gte", "lt", "lte") and _number(operand) is None:
            raise ctx.error(
                _line(item, ops[0]),
                f"{op} needs a number, got {_kind(operand)}",
                f"write {op}: 1000000",
            )
        if op == "exists" and not isinstance(operand, bool):
            raise ctx.error(_line(item, ops[0]), "exists needs true or false", "write exists: true")
        result.append(PropertyFilter(prop, op, plain(operand)))
    return tuple(result)


def _trigger(ctx: _Ctx, value: Any, line: int) -> Trigger:
    example = "trigger: {event: cart.abandoned} or trigger: {segment: leads_not_buying_3d}"
    data = _mapping(ctx, value, line, "trigger", example)
    if "segment" in data:
        _check_keys(ctx, data, ("segment",), "trigger")
        key = _string(ctx, data["segment"], _line(data, "segment"), "trigger segment", example)
        return SegmentTrigger(key)
    if "event" not in data:
        raise ctx.error(line, "trigger needs event: or segment:", example)
    _check_keys(ctx, data, ("event", "where"), "trigger")
    event = _event_type(ctx, data["event"], _line(data, "event"))
    return EventTrigger(event, _filters(ctx, data.get("where"), _line(data, "where")))


def _reentry(ctx: _Ctx, value: Any, line: int) -> Reentry:
    fix = 'write never, always or "after 7d"'
    if value is None or value == "never":
        return Reentry("never")
    if value == "always":
        return Reentry("always")
    if isinstance(value, str) and value.strip().startswith("after "):
        return Reentry("after", _duration(ctx, value.strip()[6:].strip(), line, "reentry"))
    raise ctx.error(line, f"reentry {value!r} is not understood", fix)


def _exit_on(ctx: _Ctx, value: Any, line: int) -> tuple[ExitCondition, ...]:
    example = "exit_on: [{event: order.created, as: converted}]"
    if value is None:
        return ()
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise ctx.error(line, f"exit_on must be a list, got {_kind(value)}", example)
    result = []
    for index, item in enumerate(value):
        item_line = _line(value, index) or line
        data = _mapping(ctx, item, item_line, "an exit_on entry", example)
        _check_keys(ctx, data, ("event", "as", "where", "same"), "exit_on")
        if "event" not in data:
            raise ctx.error(item_line, "exit_on entry needs event:", example)
        event = _event_type(ctx, data["event"], _line(data, "event"))
        reason = event
        if "as" in data:
            reason = _string(ctx, data["as"], _line(data, "as"), "as", "write as: converted")
        result.append(
            ExitCondition(
                event,
                reason,
                _filters(ctx, data.get("where"), _line(data, "where")),
                _same_keys(ctx, data),
            )
        )
    return tuple(result)


def _steps(
    ctx: _Ctx, value: Any, line: int, prefix: str, what: str, allow_empty: bool
) -> tuple[Step, ...]:
    example = "a list such as [{wait: 1h}, {send: {channel: email, template: seq/name}}]"
    if value is None and allow_empty:
        return ()
    if not isinstance(value, list):
        raise ctx.error(
            line, f"{what} must be a list of steps, got {_kind(value)}", f"write {example}"
        )
    if not value and not allow_empty:
        raise ctx.error(line, f"{what} is empty", "add at least one step")
    return tuple(
        _step(ctx, item, _line(value, index) or line, f"{prefix}{index}")
        for index, item in enumerate(value)
    )


def _step(ctx: _Ctx, item: Any, line: int, position: str) -> Step:
    data = _mapping(ctx, item, line, "a step", f"one of: {', '.join(ACTIONS)}")
    actions = [k for k in data if k in ACTIONS]
    if len(actions) != 1:
        unknown = [
            k
            for k in data
            if k not in ACTIONS
            and k != "id"
            and not any(k in extra for extra in EXTRA_KEYS.values())
        ]
        if unknown:
            raise ctx.error(
                _line(data, unknown[0]),
                f"unknown step {unknown[0]!r}",
                _suggest(unknown[0], ACTIONS),
            )
        raise ctx.error(
            line,
            f"a step needs exactly one action, got {len(actions)}",
            f"use one of {', '.join(ACTIONS)} per list item",
        )
    action = actions[0]
    _check_keys(ctx, data, (action, "id", *EXTRA_KEYS[action]), f"{action} step")
    step_id = _step_id(ctx, data, position)
    body, body_line = data[action], _line(data, action)
    step: Step
    if action == "wait":
        step = WaitStep(_duration(ctx, body, body_line, "wait"), step_id, line)
    elif action == "wait_until":
        step = _wait_until(ctx, data, body, body_line, position, step_id, line)
    elif action == "send":
        step = _send(ctx, body, body_line, step_id, line)
        ctx.send_seen = True
    elif action == "if":
        step = _if(ctx, data, body, body_line, position, step_id, line)
    elif action == "split":
        step = _split(ctx, body, body_line, position, step_id, line)
    elif action == "update":
        step = _update(ctx, body, body_line, step_id, line)
    else:
        step = ExitStep(
            _string(ctx, body, body_line, "exit reason", "write exit: engaged"), step_id, line
        )
    if step_id is not None:
        ctx.ids[step_id] = (position, step, line)
    return step


def _step_id(ctx: _Ctx, data: dict[str, Any], position: str) -> str | None:
    if "id" not in data:
        return None
    line = _line(data, "id")
    value = data["id"]
    if not isinstance(value, str) or not _LABEL.match(value) or value in RESERVED_IDS:
        raise ctx.error(
            line,
            f"step id {value!r} is not a simple name",
            "use lower-case letters, digits and _, e.g. id: reminder (not previous or a channel)",
        )
    if value in ctx.ids:
        raise ctx.error(
            line,
            f"step id {value!r} is used twice (first on line {ctx.ids[value][2]})",
            "give each step a different id",
        )
    return value


def _wait_until(
    ctx: _Ctx,
    data: dict[str, Any],
    body: Any,
    line: int,
    position: str,
    step_id: str | None,
    step_line: int,
) -> WaitUntilStep:
    example = "wait_until: {event: order.created, timeout: 3d}"
    spec = _mapping(ctx, body, line, "wait_until", example)
    _check_keys(ctx, spec, ("event", "where", "timeout", "same"), "wait_until")
    if "event" not in spec or "timeout" not in spec:
        raise ctx.error(line, "wait_until needs event: and timeout:", example)
    event = _event_type(ctx, spec["event"], _line(spec, "event"))
    timeout = _duration(ctx, spec["timeout"], _line(spec, "timeout"), "timeout")
    where = _filters(ctx, spec.get("where"), _line(spec, "where"))
    on_event = _steps(
        ctx,
        data.get("on_event"),
        _line(data, "on_event"),
        f"{position}.on_event.",
        "on_event",
        True,
    )
    on_timeout = _steps(
        ctx,
        data.get("on_timeout"),
        _line(data, "on_timeout"),
        f"{position}.on_timeout.",
        "on_timeout",
        True,
    )
    return WaitUntilStep(
        event, timeout, where, on_event, on_timeout, step_id, step_line, _same_keys(ctx, spec)
    )


def _same_keys(ctx: _Ctx, spec: dict[str, Any]) -> tuple[str, ...] | None:
    """``same: [order_id]``: properties that must equal the trigger event's (None: default)."""
    if "same" not in spec:
        return None
    value = spec["same"]
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
        raise ctx.error(
            _line(spec, "same"),
            "same must be a property name or a list of them",
            "write same: [order_id] (or same: [] to match any event of the contact)",
        )
    return tuple(values)


DEFAULT_SAME = ("order_id",)


def correlated(
    same: tuple[str, ...] | None, trigger: dict[str, Any] | None, event: dict[str, Any]
) -> bool:
    """True when ``event`` belongs with the enrollment's trigger event.

    Explicit ``same`` keys must be present on both and equal. By default (``same`` not
    given) ``order_id`` must be equal when both events carry one, so an order_status run
    for one order does not react to another order of the same contact.
    """
    strict = same is not None
    for key in same if same is not None else DEFAULT_SAME:
        left = _dig(trigger or {}, key)
        right = _dig(event, key)
        if left is None or right is None:
            if strict:
                return False
            continue
        if not _same(left, right):
            return False
    return True


def _send(ctx: _Ctx, body: Any, line: int, step_id: str | None, step_line: int) -> SendStep:
    example = "send: {channel: email, template: cart_recovery/reminder}"
    spec = _mapping(ctx, body, line, "send", example)
    _check_keys(ctx, spec, ("channel", "template", "fallback"), "send")
    if "channel" not in spec or "template" not in spec:
        raise ctx.error(line, "send needs channel: and template:", example)
    channel = _channel(ctx, spec["channel"], _line(spec, "channel"))
    template = _string(
        ctx,
        spec["template"],
        _line(spec, "template"),
        "template",
        "write template: <sequence>/<name>",
    )
    if not _TEMPLATE.match(template):
        raise ctx.error(
            _line(spec, "template"),
            f"template {template!r} is not <folder>/<name>",
            "write template: cart_recovery/reminder (templates/<folder>/<name>.yaml)",
        )
    fallback_raw = spec.get("fallback") or []
    if isinstance(fallback_raw, str):
        fallback_raw = [fallback_raw]
    if not isinstance(fallback_raw, list):
        raise ctx.error(
            _line(spec, "fallback"),
            "fallback must be a list of channels",
            "write fallback: [sms, email]",
        )
    fallback: list[str] = []
    for index, item in enumerate(fallback_raw):
        item_line = _line(fallback_raw, index) or _line(spec, "fallback")
        name = _channel(ctx, item, item_line)
        if name == channel or name in fallback:
            raise ctx.error(
                item_line,
                f"fallback channel {name!r} is repeated",
                "list each channel once, not the main channel",
            )
        fallback.append(name)
    return SendStep(channel, template, tuple(fallback), step_id, step_line)


def _channel(ctx: _Ctx, value: Any, line: int) -> str:
    name = _string(ctx, value, line, "channel", f"use one of {', '.join(CHANNELS)}")
    if name not in CHANNELS:
        raise ctx.error(line, f"unknown channel {name!r}", _suggest(name, CHANNELS))
    return name


def _if(
    ctx: _Ctx,
    data: dict[str, Any],
    body: Any,
    line: int,
    position: str,
    step_id: str | None,
    step_line: int,
) -> IfStep:
    example = "if: {clicked: previous} or if: <segment rule>"
    spec = _mapping(ctx, body, line, "if", example)
    condition: Condition
    if (
        len(spec) == 1
        and next(iter(spec)) in ENGAGEMENT
        and isinstance(next(iter(spec.values())), str)
        and next(iter(spec.values())) not in RULE_CHANNELS
    ):
        kind = next(iter(spec))
        target = str(spec[kind])
        if target == "previous":
            if not ctx.send_seen:
                raise ctx.error(
                    line,
                    f"{kind}: previous needs a send step before this if",
                    "put a send step earlier, or refer to a step by id",
                )
        else:
            ctx.pending_refs.append((target, _line(spec, kind)))
        condition = EngagementCondition(kind, target)
    else:
        condition = SegmentCondition(plain(spec), ctx.where(line))
        check_rule(ctx, spec, line)
    if "then" not in data and "else" not in data:
        raise ctx.error(
            step_line, "if needs then: (and optionally else:)", "write then: [{exit: engaged}]"
        )
    then = _steps(ctx, data.get("then"), _line(data, "then"), f"{position}.then.", "then", True)
    else_ = _steps(ctx, data.get("else"), _line(data, "else"), f"{position}.else.", "else", True)
    return IfStep(condition, then, else_, step_id, step_line)


def check_rule(ctx: _Ctx, spec: Any, line: int) -> None:
    """Validate a segment rule with the segment rule language."""
    from automation.segments import load_rule

    try:
        load_rule(spec, where=ctx.where(line))
    except ValueError as exc:
        detail = getattr(exc, "detail", None) or str(exc)
        raise SequenceError(
            ctx.file, line, f"invalid if rule: {detail}", "see the segment rule reference"
        ) from None


def _split(
    ctx: _Ctx, body: Any, line: int, position: str, step_id: str | None, step_line: int
) -> SplitStep:
    example = "split: [{percent: 50, steps: [...]}, {percent: 50, steps: [...]}]"
    if not isinstance(body, list) or len(body) < 2:
        raise ctx.error(line, "split needs a list of at least two branches", f"write {example}")
    result: list[SplitBranch] = []
    total = 0.0
    for index, item in enumerate(body):
        item_line = _line(body, index) or line
        spec = _mapping(ctx, item, item_line, "a split branch", example)
        _check_keys(ctx, spec, ("percent", "name", "steps"), "split branch")
        name = spec.get("name", chr(ord("a") + index) if index < 26 else f"b{index}")
        if not isinstance(name, str) or not _LABEL.match(name) or name in {b.name for b in result}:
            raise ctx.error(
                _line(spec, "name"),
                f"split branch name {name!r} is not a unique simple name",
                "use lower-case letters, digits and _, e.g. name: a",
            )
        percent = _number(spec.get("percent"))
        if percent is None or percent <= 0:
            raise ctx.error(
                _line(spec, "percent"), "split branch needs percent: > 0", "write percent: 50"
            )
        total += percent
        steps = _steps(
            ctx, spec.get("steps"), _line(spec, "steps"), f"{position}.{name}.", "split steps", True
        )
        result.append(SplitBranch(name, percent, steps))
    if abs(total - 100.0) > 1e-6:
        raise ctx.error(
            line,
            f"split percentages add up to {total:g}, not 100",
            "make the percent values sum to 100",
        )
    return SplitStep(tuple(result), step_id, step_line)


def _tags(ctx: _Ctx, spec: dict[str, Any], *keys: str) -> tuple[str, ...]:
    found: list[str] = []
    for key in keys:
        if key not in spec:
            continue
        value = spec[key]
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ctx.error(
                _line(spec, key), f"{key} must be a tag or a list of tags", f"write {key}: [vip]"
            )
        found.extend(values)
    return tuple(found)


def _update(ctx: _Ctx, body: Any, line: int, step_id: str | None, step_line: int) -> UpdateStep:
    example = "update: {set: {tier: gold}, add_tags: [vip], remove_tags: [lead]}"
    allowed = ("set", "unset", "add_tags", "add_tag", "remove_tags", "remove_tag")
    spec = _mapping(ctx, body, line, "update", example)
    _check_keys(ctx, spec, allowed, "update")
    if not spec:
        raise ctx.error(line, "update changes nothing", f"write {example}")
    values = spec.get("set") or {}
    if not isinstance(values, dict):
        raise ctx.error(
            _line(spec, "set"),
            "set must be a mapping of attribute: value",
            "write set: {tier: gold}",
        )
    unset = _tags(ctx, spec, "unset")
    return UpdateStep(
        plain(values),
        unset,
        _tags(ctx, spec, "add_tags", "add_tag"),
        _tags(ctx, spec, "remove_tags", "remove_tag"),
        step_id,
        step_line,
    )


def parse_sequence(data: Any, file: str = "<definition>") -> SequenceDefinition:
    """Validate loaded YAML (or stored plain data) and build a SequenceDefinition.

    Raises SequenceError naming file, line and the fix for the first problem found.
    """
    ctx = _Ctx(file)
    top = _mapping(
        ctx, data, _line(data, 0), "a sequence file", "start with sequence: <key>, trigger:, steps:"
    )
    _check_keys(ctx, top, TOP_KEYS, "the sequence")
    for required in ("sequence", "trigger", "steps"):
        if required not in top:
            raise ctx.error(
                top.line if isinstance(top, LineDict) else 0,
                f"missing {required}:",
                f"add {required}: (see the sequence reference)",
            )
    key = _string(
        ctx, top["sequence"], _line(top, "sequence"), "sequence", "write sequence: my_key"
    )
    if not _KEY.match(key):
        raise ctx.error(
            _line(top, "sequence"),
            f"sequence key {key!r} is not a simple name",
            "use lower-case letters, digits, _ and -, e.g. cart_recovery",
        )
    purpose = top.get("purpose", "marketing")
    if purpose not in PURPOSES:
        raise ctx.error(
            _line(top, "purpose"),
            f"purpose {purpose!r} is not known",
            _suggest(str(purpose), PURPOSES),
        )
    audience = None
    if top.get("audience") is not None:
        audience = _string(
            ctx,
            top["audience"],
            _line(top, "audience"),
            "audience",
            "write audience: <segment key>",
        )
    trigger = _trigger(ctx, top["trigger"], _line(top, "trigger"))
    reentry = _reentry(ctx, top.get("reentry"), _line(top, "reentry"))
    exit_on = _exit_on(ctx, top.get("exit_on"), _line(top, "exit_on"))
    steps = _steps(ctx, top["steps"], _line(top, "steps"), "", "steps", False)
    for target, ref_line in ctx.pending_refs:
        found = ctx.ids.get(target)
        if found is None or not isinstance(found[1], SendStep):
            sends = [k for k, v in ctx.ids.items() if isinstance(v[1], SendStep)]
            raise ctx.error(
                ref_line,
                f"no send step with id {target!r}",
                f"use previous or a send step id ({', '.join(sends) or 'none defined'})",
            )
    name = top.get("name")
    description = top.get("description")
    return SequenceDefinition(
        key=key,
        trigger=trigger,
        steps=steps,
        purpose=str(purpose),
        audience=audience,
        reentry=reentry,
        exit_on=exit_on,
        name=str(name) if name is not None else None,
        description=str(description) if description is not None else None,
        raw=plain(top),
        file=file,
        step_ids={k: v[0] for k, v in ctx.ids.items()},
        analytics=parse_analytics(top, str(purpose), ctx.error, lambda v, n: _filters(ctx, v, n)),
    )


def parse_sequence_text(text: str, file: str = "<string>") -> SequenceDefinition:
    """Parse and validate sequence YAML text."""
    try:
        data = load_yaml_text(text, file)
    except YamlError as exc:
        raise SequenceError(exc.file, exc.line, exc.message, exc.fix) from None
    return parse_sequence(data, file)


def parse_sequence_file(path: str | Path) -> SequenceDefinition:
    """Parse and validate one sequence YAML file."""
    try:
        data = load_yaml_file(path)
    except YamlError as exc:
        raise SequenceError(exc.file, exc.line, exc.message, exc.fix) from None
    return parse_sequence(data, str(path))
