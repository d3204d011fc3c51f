"""Compile a rule to SQLAlchemy Core: a SELECT of matching contact ids.

Every user value is a bound parameter; JSON access goes through SQLAlchemy's JSON
operators (PostgreSQL JSONB, SQLite JSON1). Each condition compiles to an expression
that is never NULL, so `not` means exactly what the Python evaluator means by it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    Select,
    String,
    Text,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.types import TypeEngine

from automation.models import (
    Consent,
    Contact,
    Event,
    Message,
    MessageEvent,
    Segment,
    SegmentMembership,
    Suppression,
)
from automation.segments import rfm
from automation.segments.rules import (
    All,
    Any_,
    Compare,
    EngagementCond,
    EventCond,
    FieldCond,
    InSegment,
    Not,
    ReachCond,
    Rule,
)

SUPPRESSION_CHANNELS = {
    "email": ("email",),
    "sms": ("sms",),
    "zalo": ("zalo", "zalo_zns", "zalo_oa"),
    "messenger": ("messenger",),
}


def message_event_types(types: tuple[str, ...]) -> tuple[str, ...]:
    """Engagement types as stored in message_events (short `opened` or `message.opened`)."""
    return tuple(types) + tuple(f"message.{t}" for t in types)


class PerDialect(ColumnElement[Any]):
    """One expression per dialect (postgresql / sqlite), chosen when the statement compiles."""

    inherit_cache = False

    def __init__(self, type_: TypeEngine[Any], postgresql: Any, sqlite: Any) -> None:
        self.type = type_
        self.by_dialect = {"postgresql": postgresql, "sqlite": sqlite}


@compiles(PerDialect)
def _compile_per_dialect(element: PerDialect, compiler: SQLCompiler, **kw: Any) -> str:
    chosen = element.by_dialect.get(compiler.dialect.name, element.by_dialect["postgresql"])
    return "(" + str(compiler.process(chosen, **kw)) + ")"


# --- JSON helpers (column + path) ---------------------------------------------------------


def _sqlite_path(path: tuple[str, ...]) -> str:
    # keys are validated identifiers (no quotes), so quoting each one is safe
    return "$" + "".join(f'."{part}"' for part in path)


def _pg_node(col: Any, path: tuple[str, ...]) -> Any:
    doc = type_coerce(col, JSONB)
    if not path:
        return doc
    return doc[path[0]] if len(path) == 1 else doc[path]


def _pg_text(col: Any, path: tuple[str, ...]) -> Any:
    if not path:
        return cast(type_coerce(col, JSONB), Text)
    return _pg_node(col, path).astext


def json_kind(col: Any, path: tuple[str, ...]) -> ColumnElement[str]:
    """string | number | true | false | null | array | object | missing (never NULL)."""
    pg_type = func.jsonb_typeof(_pg_node(col, path))
    pg = case((pg_type == "boolean", _pg_text(col, path)), else_=pg_type)
    lite_type = func.json_type(col, _sqlite_path(path))
    lite = case(
        (lite_type.in_(("integer", "real")), literal("number")),
        (lite_type == "text", literal("string")),
        else_=lite_type,
    )
    return func.coalesce(PerDialect(String(), pg, lite), literal("missing"))


def json_text(col: Any, path: tuple[str, ...]) -> ColumnElement[str]:
    """The value as text (meaningful when its kind is string)."""
    lite = func.json_extract(col, _sqlite_path(path))
    return PerDialect(String(), _pg_text(col, path), lite)


def json_number(col: Any, path: tuple[str, ...], kind: ColumnElement[str]) -> ColumnElement[float]:
    """The value as a float when it is a JSON number, else NULL (no cast errors)."""
    pg = cast(_pg_text(col, path), Float)
    lite = func.json_extract(col, _sqlite_path(path))
    value = PerDialect(Float(), pg, lite)
    return case((kind == "number", value), else_=None)


def json_array_has(
    col: Any, path: tuple[str, ...], value: str | int | float
) -> ColumnElement[bool]:
    """The JSON array at path has an element equal to value (same JSON type)."""
    pg = _pg_node(col, path).contains([value])
    each = func.json_each(col, _sqlite_path(path)).table_valued("value", "type")
    types = ("text",) if isinstance(value, str) else ("integer", "real")
    lite = exists(
        select(literal(1)).select_from(each).where(each.c.type.in_(types), each.c.value == value)
    )
    return PerDialect(Boolean(), pg, lite)


def text_contains(text: Any, needle: str) -> ColumnElement[bool]:
    """Case-sensitive substring test, the same on both backends."""
    return PerDialect(Boolean(), func.strpos(text, needle) > 0, func.instr(text, needle) > 0)


def json_compare(col: Any, path: tuple[str, ...], cmp: Compare) -> ColumnElement[bool]:
    """A JSON value compared by the literal's type (text, number, true/false)."""
    kind = json_kind(col, path)
    op, value = cmp.op, cmp.value
    if op == "exists":
        present = kind.not_in(("missing", "null"))
        return present if value else not_(present)
    if op == "ne":
        return not_(json_compare(col, path, Compare("eq", value)))
    if op == "in":
        return or_(*(json_compare(col, path, Compare("eq", v)) for v in value))
    if op == "contains":
        has = and_(kind == "array", json_array_has(col, path, value))
        if isinstance(value, str):
            return or_(and_(kind == "string", text_contains(json_text(col, path), value)), has)
        return has
    if isinstance(value, bool):  # eq true/false
        return kind == ("true" if value else "false")
    if isinstance(value, str):  # eq text
        return and_(kind == "string", json_text(col, path) == value)
    number = json_number(col, path, kind)
    return and_(kind == "number", _ordered(number, op, value))


def _ordered(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    if op == "eq":
        return column == value  # type: ignore[no-any-return]
    if op == "gt":
        return column > value  # type: ignore[no-any-return]
    if op == "gte":
        return column >= value  # type: ignore[no-any-return]
    if op == "lt":
        return column < value  # type: ignore[no-any-return]
    if op == "lte":
        return column <= value  # type: ignore[no-any-return]
    raise ValueError(f"not an ordering operator: {op}")


# --- conditions ---------------------------------------------------------------------------


def _column_compare(column: Any, cmp: Compare, now: datetime) -> ColumnElement[bool]:
    """Text / number / date column compare; NULL never matches (ne: NULL matches)."""
    op, value = cmp.op, cmp.value
    present = column.is_not(None)
    if op == "exists":
        return present if value else column.is_(None)  # type: ignore[no-any-return]
    if op == "ne":
        return not_(_column_compare(column, Compare("eq", value), now))
    if op == "in":
        return and_(present, column.in_(value))
    if op == "contains":
        return and_(present, text_contains(column, value))
    if op == "within":
        return and_(present, column >= now - value)
    if op == "more_than_ago":
        return and_(present, column < now - value)
    if op == "before":
        return and_(present, column < value)
    if op == "after":
        return and_(present, column > value)
    return and_(present, _ordered(column, op, value))


def _field(cond: FieldCond, now: datetime) -> ColumnElement[bool]:
    if cond.kind == "json":
        return json_compare(Contact.attributes, cond.path, cond.compare)
    if cond.kind == "list":
        return and_(
            json_kind(Contact.tags, ()) == "array",
            json_array_has(Contact.tags, (), cond.compare.value),
        )
    if cond.kind == "rfm":
        return _column_compare(rfm.score_sql(cond.field, now), cond.compare, now)
    if cond.kind == "engaged":
        return _last_engaged(cond, now)
    return _column_compare(getattr(Contact, cond.field), cond.compare, now)


def _engagement_exists(
    types: tuple[str, ...], channels: tuple[str, ...], since: datetime | None, strict: bool = False
) -> ColumnElement[bool]:
    query = (
        select(literal(1))
        .select_from(MessageEvent)
        .join(Message, Message.id == MessageEvent.message_id)
        .where(
            Message.contact_id == Contact.id,
            Message.channel.in_(channels),
            MessageEvent.type.in_(message_event_types(types)),
        )
    )
    if since is not None:
        query = query.where(
            MessageEvent.occurred_at > since if strict else MessageEvent.occurred_at >= since
        )
    return exists(query)


def _last_engaged(cond: FieldCond, now: datetime) -> ColumnElement[bool]:
    types = ("opened", "clicked", "replied")
    op, value = cond.compare.op, cond.compare.value
    ever = _engagement_exists(types, cond.channels, None)
    if op == "exists":
        return ever if value else not_(ever)
    if op == "within":
        return _engagement_exists(types, cond.channels, now - value)
    if op == "after":
        return _engagement_exists(types, cond.channels, value, strict=True)
    cutoff = now - value if op == "more_than_ago" else value
    return and_(ever, not_(_engagement_exists(types, cond.channels, cutoff)))


def _event(cond: EventCond, now: datetime) -> ColumnElement[bool]:
    filters: list[ColumnElement[bool]] = [Event.type == cond.event_type]
    if cond.within is not None:
        filters.append(Event.occurred_at >= now - cond.within)
    for prop in cond.where:
        filters.append(json_compare(Event.payload, ("properties", *prop.path), prop.compare))
    if cond.at_least == 1:
        found: ColumnElement[bool] = exists(
            select(literal(1)).select_from(Event).where(Event.contact_id == Contact.id, *filters)
        )
    else:
        found = Contact.id.in_(
            select(Event.contact_id)
            .where(Event.contact_id.is_not(None), *filters)
            .group_by(Event.contact_id)
            .having(func.count() >= cond.at_least)
        )
    return not_(found) if cond.negate else found


def _engagement(cond: EngagementCond, now: datetime) -> ColumnElement[bool]:
    since = now - cond.within if cond.within is not None else None
    if cond.at_least == 1:
        return _engagement_exists(cond.types, cond.channels, since)
    query = (
        select(Message.contact_id)
        .join(MessageEvent, MessageEvent.message_id == Message.id)
        .where(
            Message.channel.in_(cond.channels),
            MessageEvent.type.in_(message_event_types(cond.types)),
        )
        .group_by(Message.contact_id)
        .having(func.count() >= cond.at_least)
    )
    if since is not None:
        query = query.where(MessageEvent.occurred_at >= since)
    return Contact.id.in_(query)


def addresses_sql(channel: str) -> list[Any]:
    """The contact's address expressions for a consent channel."""
    if channel == "email":
        return [Contact.email]
    if channel == "messenger":
        return [Contact.facebook_psid]
    phones = [Contact.phone, func.ltrim(Contact.phone, "+")]
    return phones + [Contact.zalo_user_id] if channel == "zalo" else phones


def has_address_sql(channel: str) -> ColumnElement[bool]:
    """A non-empty address for the channel."""
    columns = [Contact.email] if channel == "email" else [Contact.facebook_psid]
    if channel in ("sms", "zalo"):
        columns = [Contact.phone] + ([Contact.zalo_user_id] if channel == "zalo" else [])
    return or_(*(and_(c.is_not(None), c != "") for c in columns))


def suppressed_sql(channel: str) -> ColumnElement[bool]:
    """One of the contact's addresses for the channel is in suppressions."""
    return exists(
        select(literal(1))
        .select_from(Suppression)
        .where(
            Suppression.channel.in_(SUPPRESSION_CHANNELS[channel]),
            Suppression.address.in_(addresses_sql(channel)),
        )
    )


def consent_denied_sql(channel: str) -> ColumnElement[bool]:
    """Marketing consent for the channel is recorded as denied."""
    return exists(
        select(literal(1))
        .select_from(Consent)
        .where(
            Consent.contact_id == Contact.id,
            Consent.channel == channel,
            Consent.purpose == "marketing",
            Consent.status == "denied",
        )
    )


def _reach(cond: ReachCond) -> ColumnElement[bool]:
    parts = []
    for channel in cond.channels:
        if cond.kind == "has_address":
            parts.append(has_address_sql(channel))
        elif cond.kind == "suppressed":
            parts.append(suppressed_sql(channel))
        else:
            parts.append(
                and_(
                    has_address_sql(channel),
                    not_(suppressed_sql(channel)),
                    not_(consent_denied_sql(channel)),
                )
            )
    return or_(*parts)


def _in_segment(cond: InSegment) -> ColumnElement[bool]:
    return exists(
        select(literal(1))
        .select_from(SegmentMembership)
        .join(Segment, Segment.id == SegmentMembership.segment_id)
        .where(
            Segment.key == cond.key,
            SegmentMembership.contact_id == Contact.id,
            SegmentMembership.exited_at.is_(None),
        )
    )


def condition(rule: Rule, now: datetime) -> ColumnElement[bool]:
    """The rule as a boolean SQL expression over the contacts table (never NULL)."""
    if isinstance(rule, All):
        return and_(*(condition(c, now) for c in rule.children)) if rule.children else true()
    if isinstance(rule, Any_):
        return or_(*(condition(c, now) for c in rule.children)) if rule.children else false()
    if isinstance(rule, Not):
        return not_(condition(rule.child, now))
    if isinstance(rule, FieldCond):
        return _field(rule, now)
    if isinstance(rule, EventCond):
        return _event(rule, now)
    if isinstance(rule, EngagementCond):
        return _engagement(rule, now)
    if isinstance(rule, ReachCond):
        return _reach(rule)
    return _in_segment(rule)


def compile_rule(rule: Rule, now: datetime) -> Select[int]:
    """SELECT contacts.id of every contact the rule matches at `now`."""
    return select(Contact.id).where(condition(rule, now))
