"""Sequence step parsing: one function per step kind (wait, wait_until, send, if, split...)."""

from __future__ import annotations

from typing import Any

from automation.dsl.filters import as_number
from automation.dsl.yamlload import plain
from automation.sequences.parse_common import (
    LABEL_RE,
    TEMPLATE_RE,
    Ctx,
    check_keys,
    kind_of,
    line_at,
    need_duration,
    need_event_type,
    need_mapping,
    need_text,
    parse_filters,
    parse_same,
    suggest,
)
from automation.sequences.steps import (
    CHANNELS,
    ENGAGEMENT,
    RESERVED_IDS,
    RULE_CHANNELS,
    Condition,
    EngagementCondition,
    ExitStep,
    IfStep,
    SegmentCondition,
    SendStep,
    SequenceError,
    SplitBranch,
    SplitStep,
    Step,
    UpdateStep,
    WaitStep,
    WaitUntilStep,
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


def parse_step_list(
    ctx: Ctx, value: Any, line: int, prefix: str, what: str, allow_empty: bool
) -> tuple[Step, ...]:
    example = "a list such as [{wait: 1h}, {send: {channel: email, template: seq/name}}]"
    if value is None and allow_empty:
        return ()
    if not isinstance(value, list):
        raise ctx.error(
            line, f"{what} must be a list of steps, got {kind_of(value)}", f"write {example}"
        )
    if not value and not allow_empty:
        raise ctx.error(line, f"{what} is empty", "add at least one step")
    return tuple(
        _step(ctx, item, line_at(value, index) or line, f"{prefix}{index}")
        for index, item in enumerate(value)
    )


def _step(ctx: Ctx, item: Any, line: int, position: str) -> Step:
    data = need_mapping(ctx, item, line, "a step", f"one of: {', '.join(ACTIONS)}")
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
                line_at(data, unknown[0]),
                f"unknown step {unknown[0]!r}",
                suggest(unknown[0], ACTIONS),
            )
        raise ctx.error(
            line,
            f"a step needs exactly one action, got {len(actions)}",
            f"use one of {', '.join(ACTIONS)} per list item",
        )
    action = actions[0]
    check_keys(ctx, data, (action, "id", *EXTRA_KEYS[action]), f"{action} step")
    step_id = _step_id(ctx, data, position)
    body, body_line = data[action], line_at(data, action)
    step: Step
    if action == "wait":
        step = WaitStep(need_duration(ctx, body, body_line, "wait"), step_id, line)
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
            need_text(ctx, body, body_line, "exit reason", "write exit: engaged"), step_id, line
        )
    if step_id is not None:
        ctx.ids[step_id] = (position, step, line)
    return step


def _step_id(ctx: Ctx, data: dict[str, Any], position: str) -> str | None:
    if "id" not in data:
        return None
    line = line_at(data, "id")
    value = data["id"]
    if not isinstance(value, str) or not LABEL_RE.match(value) or value in RESERVED_IDS:
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
    ctx: Ctx,
    data: dict[str, Any],
    body: Any,
    line: int,
    position: str,
    step_id: str | None,
    step_line: int,
) -> WaitUntilStep:
    example = "wait_until: {event: order.created, timeout: 3d}"
    spec = need_mapping(ctx, body, line, "wait_until", example)
    check_keys(ctx, spec, ("event", "where", "timeout", "same"), "wait_until")
    if "event" not in spec or "timeout" not in spec:
        raise ctx.error(line, "wait_until needs event: and timeout:", example)
    event = need_event_type(ctx, spec["event"], line_at(spec, "event"))
    timeout = need_duration(ctx, spec["timeout"], line_at(spec, "timeout"), "timeout")
    where = parse_filters(ctx, spec.get("where"), line_at(spec, "where"))
    on_event = parse_step_list(
        ctx,
        data.get("on_event"),
        line_at(data, "on_event"),
        f"{position}.on_event.",
        "on_event",
        True,
    )
    on_timeout = parse_step_list(
        ctx,
        data.get("on_timeout"),
        line_at(data, "on_timeout"),
        f"{position}.on_timeout.",
        "on_timeout",
        True,
    )
    return WaitUntilStep(
        event, timeout, where, on_event, on_timeout, step_id, step_line, parse_same(ctx, spec)
    )


def _send(ctx: Ctx, body: Any, line: int, step_id: str | None, step_line: int) -> SendStep:
    example = "send: {channel: email, template: cart_recovery/reminder}"
    spec = need_mapping(ctx, body, line, "send", example)
    check_keys(ctx, spec, ("channel", "template", "fallback", "pool"), "send")
    if "channel" not in spec or "template" not in spec:
        raise ctx.error(line, "send needs channel: and template:", example)
    channel = _channel(ctx, spec["channel"], line_at(spec, "channel"))
    template = need_text(
        ctx,
        spec["template"],
        line_at(spec, "template"),
        "template",
        "write template: <sequence>/<name>",
    )
    if not TEMPLATE_RE.match(template):
        raise ctx.error(
            line_at(spec, "template"),
            f"template {template!r} is not <folder>/<name>",
            "write template: cart_recovery/reminder (templates/<folder>/<name>.yaml)",
        )
    fallback_raw = spec.get("fallback") or []
    if isinstance(fallback_raw, str):
        fallback_raw = [fallback_raw]
    if not isinstance(fallback_raw, list):
        raise ctx.error(
            line_at(spec, "fallback"),
            "fallback must be a list of channels",
            "write fallback: [sms, email]",
        )
    fallback: list[str] = []
    for index, item in enumerate(fallback_raw):
        item_line = line_at(fallback_raw, index) or line_at(spec, "fallback")
        name = _channel(ctx, item, item_line)
        if name == channel or name in fallback:
            raise ctx.error(
                item_line,
                f"fallback channel {name!r} is repeated",
                "list each channel once, not the main channel",
            )
        fallback.append(name)
    pool = spec.get("pool", "fallback")
    if pool not in ("fallback", "wait"):
        raise ctx.error(
            line_at(spec, "pool"),
            f"pool {pool!r} is not known",
            "write pool: wait (keep waiting for 30 phones) or pool: fallback (the default)",
        )
    return SendStep(channel, template, tuple(fallback), step_id, step_line, pool == "wait")


def _channel(ctx: Ctx, value: Any, line: int) -> str:
    name = need_text(ctx, value, line, "channel", f"use one of {', '.join(CHANNELS)}")
    if name not in CHANNELS:
        raise ctx.error(line, f"unknown channel {name!r}", suggest(name, CHANNELS))
    return name


def _if(
    ctx: Ctx,
    data: dict[str, Any],
    body: Any,
    line: int,
    position: str,
    step_id: str | None,
    step_line: int,
) -> IfStep:
    example = "if: {clicked: previous} or if: <segment rule>"
    spec = need_mapping(ctx, body, line, "if", example)
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
            ctx.pending_refs.append((target, line_at(spec, kind)))
        condition = EngagementCondition(kind, target)
    else:
        condition = SegmentCondition(plain(spec), ctx.where(line))
        check_rule(ctx, spec, line)
    if "then" not in data and "else" not in data:
        raise ctx.error(
            step_line, "if needs then: (and optionally else:)", "write then: [{exit: engaged}]"
        )
    then = parse_step_list(
        ctx, data.get("then"), line_at(data, "then"), f"{position}.then.", "then", True
    )
    else_ = parse_step_list(
        ctx, data.get("else"), line_at(data, "else"), f"{position}.else.", "else", True
    )
    return IfStep(condition, then, else_, step_id, step_line)


def check_rule(ctx: Ctx, spec: Any, line: int) -> None:
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
    ctx: Ctx, body: Any, line: int, position: str, step_id: str | None, step_line: int
) -> SplitStep:
    example = "split: [{percent: 50, steps: [...]}, {percent: 50, steps: [...]}]"
    if not isinstance(body, list) or len(body) < 2:
        raise ctx.error(line, "split needs a list of at least two branches", f"write {example}")
    result: list[SplitBranch] = []
    total = 0.0
    for index, item in enumerate(body):
        item_line = line_at(body, index) or line
        spec = need_mapping(ctx, item, item_line, "a split branch", example)
        check_keys(ctx, spec, ("percent", "name", "steps"), "split branch")
        name = spec.get("name", chr(ord("a") + index) if index < 26 else f"b{index}")
        if (
            not isinstance(name, str)
            or not LABEL_RE.match(name)
            or name in {b.name for b in result}
        ):
            raise ctx.error(
                line_at(spec, "name"),
                f"split branch name {name!r} is not a unique simple name",
                "use lower-case letters, digits and _, e.g. name: a",
            )
        percent = as_number(spec.get("percent"))
        if percent is None or percent <= 0:
            raise ctx.error(
                line_at(spec, "percent"), "split branch needs percent: > 0", "write percent: 50"
            )
        total += percent
        steps = parse_step_list(
            ctx,
            spec.get("steps"),
            line_at(spec, "steps"),
            f"{position}.{name}.",
            "split steps",
            True,
        )
        result.append(SplitBranch(name, percent, steps))
    if abs(total - 100.0) > 1e-6:
        raise ctx.error(
            line,
            f"split percentages add up to {total:g}, not 100",
            "make the percent values sum to 100",
        )
    return SplitStep(tuple(result), step_id, step_line)


def _tags(ctx: Ctx, spec: dict[str, Any], *keys: str) -> tuple[str, ...]:
    found: list[str] = []
    for key in keys:
        if key not in spec:
            continue
        value = spec[key]
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            raise ctx.error(
                line_at(spec, key), f"{key} must be a tag or a list of tags", f"write {key}: [vip]"
            )
        found.extend(values)
    return tuple(found)


def _update(ctx: Ctx, body: Any, line: int, step_id: str | None, step_line: int) -> UpdateStep:
    example = "update: {set: {tier: gold}, add_tags: [vip], remove_tags: [lead]}"
    allowed = ("set", "unset", "add_tags", "add_tag", "remove_tags", "remove_tag")
    spec = need_mapping(ctx, body, line, "update", example)
    check_keys(ctx, spec, allowed, "update")
    if not spec:
        raise ctx.error(line, "update changes nothing", f"write {example}")
    values = spec.get("set") or {}
    if not isinstance(values, dict):
        raise ctx.error(
            line_at(spec, "set"),
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
