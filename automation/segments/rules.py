"""Segment rule language: parse and validate YAML into a typed AST with file:line errors.

A rule is a mapping. Conditions (see the README for the full reference):

    {field: attributes.city, in: [Hà Nội, HCM]}            contact fields / attributes
    {field: last_order_at, more_than_ago: 90d}             dates relative to now
                                                           (durations: automation.dsl.durations)
    {performed: order.created, where: [{property: total, gte: 2000000}],  (dsl.filters)
     at_least: 2, within: 180d}                            events
    {not_performed: order.created, within: 3d}
    {opened: email, within: 30d}  {clicked: any}  {replied: zalo}  {engaged: any, within: 30d}
    {reachable: email}  {has_address: sms}  {suppressed: email}
    {in_segment: vip}
    {all: [...]}  {any: [...]}  {not: {...}}
"""

from __future__ import annotations

import difflib
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from automation.core.events import ALL_TYPES
from automation.core.vocabulary import CONSENT_CHANNELS, ENGAGEMENT, RULE_CHANNELS
from automation.dsl import durations
from automation.dsl.filters import FilterError, parse_filter
from automation.dsl.yamlload import LineDict, LineList, YamlError, load_yaml_file, load_yaml_text
from automation.segments.nodes import (
    ALIASES,
    DATE_FIELDS,
    DATE_OPS,
    ENGAGEMENT_KINDS,
    JSON_OPS,
    KEY_RE,
    LIST_OPS,
    LOCAL_TZ,
    MAX_DEPTH,
    MAX_KEY_LENGTH,
    NUMBER_FIELDS,
    NUMBER_OPS,
    OPERATORS,
    REACH_KINDS,
    RELATIVE_OPS,
    RFM_FIELDS,
    SEGMENT_KEY_RE,
    TEXT_FIELDS,
    TEXT_OPS,
    All,
    Any_,
    Compare,
    EngagementCond,
    EventCond,
    FieldCond,
    FieldKind,
    InSegment,
    Not,
    PropertyFilter,
    ReachCond,
    Rule,
    RuleError,
    SegmentDef,
    references,
)

# --- parsing ------------------------------------------------------------------------------


class _Ctx:
    """Where we are: the file name and a fallback line."""

    def __init__(self, filename: str, line: int | None) -> None:
        self.filename = filename
        self.line = line

    def at(self, obj: Any = None, key: Any = None) -> str:
        line = self.line
        if isinstance(obj, LineDict):
            line = obj.key_lines.get(key, obj.line) if key is not None else obj.line
        elif isinstance(obj, LineList):
            line = obj.line
        if line is None:
            return self.filename
        return f"{self.filename}:{line}" if self.filename else f"line {line}"

    def fail(self, obj: Any, key: Any, message: str) -> RuleError:
        return RuleError(self.at(obj, key), message)


def _split_where(where: str) -> tuple[str, int | None]:
    match = re.match(r"^(.*):(\d+)$", where)
    if match:
        return match.group(1), int(match.group(2))
    return where, None


def load_rule(obj: Any, where: str = "") -> Rule:
    """Validate a rule (dict/list, from YAML or JSON) into the AST; RuleError names file:line.

    `where` is "file" or "file:line"; lines from a LineDict (load_yaml) take precedence.
    """
    filename, line = _split_where(where)
    return _parse(obj, _Ctx(filename, line), depth=0)


def _suggest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return f"{hint}; use one of: {', '.join(choices)}"


COND_KEYS = {
    "all", "any", "not", "field", "performed", "not_performed", "in_segment",
    *ENGAGEMENT_KINDS, *REACH_KINDS,
}  # fmt: skip


def _parse(obj: Any, ctx: _Ctx, depth: int) -> Rule:
    if depth > MAX_DEPTH:
        raise ctx.fail(obj, None, f"rule nested too deeply (more than {MAX_DEPTH} levels); "
                       "flatten it with all: / any: lists")  # fmt: skip
    if isinstance(obj, list):
        return All(tuple(_parse_items(obj, ctx, depth)))
    if not isinstance(obj, dict) or not obj:
        raise ctx.fail(
            obj, None,
            f"expected a condition mapping, got {_describe(obj)}; write for example "
            "{field: attributes.city, eq: Hà Nội} or {all: [...]}",
        )  # fmt: skip
    heads = [k for k in obj if k in COND_KEYS]
    if len(heads) != 1:
        first = next(iter(obj))
        if not heads:
            raise ctx.fail(
                obj, first, f"unknown condition '{first}'" + _suggest(str(first), sorted(COND_KEYS))
            )
        raise ctx.fail(obj, heads[1], f"one condition per mapping, found {', '.join(heads)}; "
                       "wrap them in {all: [...]} or {any: [...]}")  # fmt: skip
    head = heads[0]
    if head in ("all", "any"):
        _only(obj, ctx, {head})
        items = obj[head]
        if not isinstance(items, list):
            raise ctx.fail(obj, head, f"'{head}' takes a list of conditions")
        children = tuple(_parse_items(items, ctx, depth))
        return All(children) if head == "all" else Any_(children)
    if head == "not":
        _only(obj, ctx, {"not"})
        return Not(_parse(obj["not"], _child_ctx(obj, "not", ctx), depth + 1))
    if head == "field":
        return _parse_field(obj, ctx)
    if head in ("performed", "not_performed"):
        return _parse_event(obj, ctx, head)
    if head in ENGAGEMENT_KINDS:
        return _parse_engagement(obj, ctx, head)
    if head in REACH_KINDS:
        _only(obj, ctx, {head})
        channel = obj[head]
        choices = (*CONSENT_CHANNELS, "any")
        if channel not in choices:
            raise ctx.fail(
                obj, head, f"unknown channel {channel!r}" + _suggest(str(channel), choices)
            )
        chans = CONSENT_CHANNELS if channel == "any" else (str(channel),)
        return ReachCond(head, chans)
    # in_segment
    _only(obj, ctx, {"in_segment"})
    key = obj["in_segment"]
    if not isinstance(key, str) or not SEGMENT_KEY_RE.match(key):
        raise ctx.fail(obj, "in_segment", "in_segment takes a segment key like vip")
    return InSegment(key, ctx.at(obj, "in_segment"))


def _parse_items(items: list[Any], ctx: _Ctx, depth: int) -> list[Rule]:
    result = []
    for index, item in enumerate(items):
        line = items.item_lines[index] if isinstance(items, LineList) else ctx.line
        result.append(_parse(item, _Ctx(ctx.filename, line), depth + 1))
    return result


def _child_ctx(obj: Any, key: str, ctx: _Ctx) -> _Ctx:
    line = obj.key_lines.get(key) if isinstance(obj, LineDict) else ctx.line
    return _Ctx(ctx.filename, line)


def _only(obj: dict[Any, Any], ctx: _Ctx, allowed: set[str]) -> None:
    for key in obj:
        if key not in allowed:
            choices = sorted(allowed)
            raise ctx.fail(obj, key, f"unexpected key '{key}' here; allowed: {', '.join(choices)}")


def _describe(obj: Any) -> str:
    if obj is None:
        return "nothing"
    return f"{type(obj).__name__} {obj!r}"


def _parse_field(obj: dict[Any, Any], ctx: _Ctx) -> FieldCond:
    name = obj["field"]
    if not isinstance(name, str) or not name:
        raise ctx.fail(obj, "field", "field takes a name like attributes.city or last_order_at")
    name = ALIASES.get(name, name)
    path: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    kind: FieldKind
    allowed: tuple[str, ...]
    if name.startswith("attributes."):
        path = tuple(name.split(".")[1:])
        for part in path:
            if not KEY_RE.match(part):
                raise ctx.fail(obj, "field", f"bad attribute name {part!r}: use letters, digits, "
                               "_ or - (starting with a letter)")  # fmt: skip
        kind, allowed, name = "json", JSON_OPS, "attributes"
    elif name == "tags":
        kind, allowed = "list", LIST_OPS
    elif name in TEXT_FIELDS:
        kind, allowed = "text", TEXT_OPS
    elif name in NUMBER_FIELDS:
        kind, allowed = "number", NUMBER_OPS
    elif name in RFM_FIELDS:
        kind, allowed = "rfm", NUMBER_OPS
    elif name in DATE_FIELDS:
        kind, allowed = "date", DATE_OPS
    elif name == "last_engaged_at" or name.startswith("last_engaged_at."):
        channel = name.partition(".")[2] or "any"
        if channel not in RULE_CHANNELS:
            raise ctx.fail(obj, "field", f"unknown channel {channel!r} in {name}"
                           + _suggest(channel, tuple(RULE_CHANNELS)))  # fmt: skip
        kind, allowed, name = "engaged", DATE_OPS, "last_engaged_at"
        channels = RULE_CHANNELS[channel]
    else:
        known = (
            *TEXT_FIELDS, *NUMBER_FIELDS, *DATE_FIELDS, *RFM_FIELDS, *ALIASES,
            "tags", "last_engaged_at", "attributes.<name>",
        )  # fmt: skip
        raise ctx.fail(obj, "field", f"unknown field {name!r}" + _suggest(name, known))
    op, value_key = _one_operator(obj, ctx, {"field"}, allowed, f"field {obj['field']}")
    compare = _parse_compare(op, obj[value_key], kind, obj, value_key, ctx)
    return FieldCond(name, kind, compare, path, channels)


def _one_operator(
    obj: dict[Any, Any], ctx: _Ctx, skip: set[str], allowed: tuple[str, ...], what: str
) -> tuple[str, str]:
    ops = [k for k in obj if k not in skip]
    if not ops:
        raise ctx.fail(obj, None, f"{what} needs an operator; use one of: {', '.join(allowed)}")
    for key in ops:
        if key not in OPERATORS:
            raise ctx.fail(obj, key, f"unknown operator '{key}'" + _suggest(str(key), OPERATORS))
        if key not in allowed:
            raise ctx.fail(obj, key, f"operator '{key}' does not apply to {what}; "
                           f"use one of: {', '.join(allowed)}")  # fmt: skip
    if len(ops) > 1:
        raise ctx.fail(obj, ops[1], f"one operator per condition, found {', '.join(ops)}; "
                       "combine conditions with {all: [...]}")  # fmt: skip
    return ops[0], ops[0]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _parse_compare(op: str, value: Any, kind: FieldKind, obj: Any, key: str, ctx: _Ctx) -> Compare:
    def bad(expected: str) -> RuleError:
        return ctx.fail(obj, key, f"'{op}' expects {expected}, got {_describe(value)}")

    if op == "exists":
        if not isinstance(value, bool):
            raise bad("true or false")
        return Compare(op, value)
    if op in RELATIVE_OPS:
        return Compare(op, parse_duration(value, ctx.at(obj, key)))
    if op in ("before", "after"):
        return Compare(op, _parse_instant(value, bad))
    if kind in ("number", "rfm"):
        if op == "in":
            if not isinstance(value, list) or not value or not all(_is_number(v) for v in value):
                raise bad("a list of numbers")
            return Compare(op, tuple(value))
        if not _is_number(value):
            raise bad("a number")
        if kind == "rfm" and op in ("eq", "ne") and value not in (1, 2, 3, 4, 5):
            raise bad("a score from 1 to 5")
        return Compare(op, value)
    if kind == "text":
        if op == "in":
            if (
                not isinstance(value, list)
                or not value
                or not all(isinstance(v, str) for v in value)
            ):
                raise bad("a list of texts")
            return Compare(op, tuple(value))
        if not isinstance(value, str):
            raise bad("a text (quote numbers: '0912345678')")
        return Compare(op, value)
    if kind == "list":
        if not isinstance(value, str):
            raise bad("a text")
        return Compare(op, value)
    # json: attributes and event properties
    if op in ("gt", "gte", "lt", "lte"):
        if not _is_number(value):
            raise bad("a number")
        return Compare(op, value)
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or not all(_is_scalar(v) for v in value):
            raise bad("a list of texts, numbers or true/false")
        return Compare(op, tuple(value))
    if op == "contains":
        if not (isinstance(value, str) or _is_number(value)):
            raise bad("a text or a number")
        return Compare(op, value)
    if not _is_scalar(value):
        raise bad("a text, a number or true/false")
    return Compare(op, value)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bool)) or _is_number(value)


def _parse_instant(value: Any, bad: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise bad("a date like 2026-01-31 or 2026-01-31T08:00:00+07:00") from None
    else:
        raise bad("a date like 2026-01-31")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=LOCAL_TZ)
    return moment.astimezone(UTC)


def parse_duration(value: Any, where: str = "") -> timedelta:
    """A duration in the one dsl grammar (30m, 12h, 90d, 2w, 1h30m); RuleError names where."""
    try:
        return durations.parse_duration(value)
    except durations.DurationError as exc:
        raise RuleError(where, f"bad duration {value!r} ({exc.problem}); {exc.fix}") from None


def _parse_count(obj: dict[Any, Any], ctx: _Ctx) -> int:
    value = obj.get("at_least", 1)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ctx.fail(obj, "at_least", f"at_least expects a whole number >= 1, got {value!r}")
    return value


def _parse_within(obj: dict[Any, Any], ctx: _Ctx) -> timedelta | None:
    if "within" not in obj:
        return None
    return parse_duration(obj["within"], ctx.at(obj, "within"))


def _parse_event(obj: dict[Any, Any], ctx: _Ctx, head: str) -> EventCond:
    negate = head == "not_performed"
    allowed = {head, "where", "within"} | (set() if negate else {"at_least"})
    _only(obj, ctx, allowed)
    event_type = obj[head]
    if event_type not in ALL_TYPES:
        raise ctx.fail(obj, head, f"unknown event type {event_type!r}"
                       + _suggest(str(event_type), sorted(ALL_TYPES)))  # fmt: skip
    filters = []
    where = obj.get("where", [])
    if isinstance(where, dict):
        where = [where]
    if not isinstance(where, list):
        raise ctx.fail(obj, "where", "where takes a list like [{property: total, gte: 2000000}]")
    for index, item in enumerate(where):
        line = where.item_lines[index] if isinstance(where, LineList) else ctx.line
        filters.append(_parse_property(item, _Ctx(ctx.filename, line)))
    return EventCond(
        event_type=str(event_type),
        negate=negate,
        at_least=1 if negate else _parse_count(obj, ctx),
        within=_parse_within(obj, ctx),
        where=tuple(filters),
    )


def _parse_property(obj: Any, ctx: _Ctx) -> PropertyFilter:
    try:
        return parse_filter(to_plain(obj), ctx.at(obj), lambda key: ctx.at(obj, key))
    except FilterError as exc:
        raise RuleError(exc.where, f"{exc.message}; {exc.fix}") from None


def _parse_engagement(obj: dict[Any, Any], ctx: _Ctx, head: str) -> EngagementCond:
    _only(obj, ctx, {head, "within", "at_least"})
    channel = obj[head]
    if channel is None:
        channel = "any"
    if channel not in RULE_CHANNELS:
        raise ctx.fail(obj, head, f"unknown channel {channel!r}"
                       + _suggest(str(channel), tuple(RULE_CHANNELS)))  # fmt: skip
    return EngagementCond(
        types=ENGAGEMENT[head],
        channels=RULE_CHANNELS[str(channel)],
        at_least=_parse_count(obj, ctx),
        within=_parse_within(obj, ctx),
    )


# --- segment files ------------------------------------------------------------------------

SEGMENT_KEYS = ("segment", "name", "description", "rule")


def parse_segment(data: Any, filename: str) -> SegmentDef:
    """Validate a segment document {segment, name, description, rule}."""
    ctx = _Ctx(filename, 1)
    if not isinstance(data, dict):
        raise ctx.fail(data, None, "a segment file is a mapping with segment, name and rule")
    _only(data, ctx, set(SEGMENT_KEYS))
    for required in ("segment", "name", "rule"):
        if required not in data:
            raise ctx.fail(data, None, f"missing '{required}'; a segment needs segment (key), "
                           "name and rule")  # fmt: skip
    key = data["segment"]
    if isinstance(key, str) and len(key) > MAX_KEY_LENGTH:
        raise ctx.fail(data, "segment", f"segment key is {len(key)} characters long; "
                       f"use at most {MAX_KEY_LENGTH}")  # fmt: skip
    if not isinstance(key, str) or not SEGMENT_KEY_RE.match(key):
        raise ctx.fail(data, "segment", f"bad segment key {key!r}: use lower-case letters, "
                       "digits and _ (for example vip or lapsed_90d)")  # fmt: skip
    name = data["name"]
    if not isinstance(name, str) or not name.strip():
        raise ctx.fail(data, "name", "name must be a non-empty text")
    description = data.get("description")
    if description is not None and not isinstance(description, str):
        raise ctx.fail(data, "description", "description must be a text")
    rule = _parse(data["rule"], _child_ctx(data, "rule", ctx), depth=0)
    return SegmentDef(
        key=key,
        name=name.strip(),
        description=description.strip() if description else None,
        rule=rule,
        raw_rule=to_plain(data["rule"]),
        where=ctx.at(data, "segment"),
        references=tuple(references(rule)),
    )


def load_segment_text(text: str, filename: str) -> SegmentDef:
    """Parse one segment YAML document; RuleError names the file and line."""
    try:
        data = load_yaml_text(text, filename)
    except YamlError as exc:
        raise RuleError(exc.where, f"{exc.message}; {exc.fix}") from None
    return parse_segment(data, filename)


def load_segment_file(path: str | Path) -> SegmentDef:
    """Read and parse a segment YAML file; RuleError names the file and line."""
    try:
        data = load_yaml_file(path)
    except YamlError as exc:
        raise RuleError(exc.where, f"{exc.message}; {exc.fix}") from None
    return parse_segment(data, str(path))


def to_plain(obj: Any) -> Any:
    """Plain JSON-ready data (dates as ISO text) from a LineDict/LineList tree."""
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_plain(v) for v in obj]
    if isinstance(obj, (datetime, date)):
        return obj.isoformat()
    return obj
