"""Compile a rule to SQLAlchemy Core: a SELECT of matching contact ids.

Every user value is a bound parameter; JSON access goes through SQLAlchemy's JSON
operators (PostgreSQL JSONB, SQLite JSON1), written per backend in
automation.segments.sqljson. Each condition compiles to an expression
that is never NULL, so `not` means exactly what the Python evaluator means by it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    bindparam,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    true,
    union,
)

from automation.contacts.reachability import unreachable_sql
from automation.core.models import (
    Consent,
    Contact,
    Event,
    Message,
    MessageEvent,
    Segment,
    SegmentMembership,
    Suppression,
)
from automation.core.vocabulary import ENGAGEMENT, RULE_CHANNELS
from automation.segments import rfm
from automation.segments.nodes import (
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
from automation.segments.sqljson import (
    json_array_has,
    json_compare,
    json_kind,
    ordered,
    text_contains,
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
    return and_(present, ordered(column, op, value))


def _field(cond: FieldCond, now: datetime, positive: bool) -> ColumnElement[bool]:
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
        return _last_engaged(cond, now, positive)
    return _column_compare(getattr(Contact, cond.field), cond.compare, now)


def _ids_or_exists(
    ids: Select[Any], correlated: Select[Any], positive: bool
) -> ColumnElement[bool]:
    """`contacts.id IN (ids)` where the test is positive (PostgreSQL hashes the set or
    semi-joins), a correlated EXISTS where it is negated (it becomes an anti-join)."""
    return Contact.id.in_(ids) if positive else exists(correlated)


def _engaged_query(types: tuple[str, ...], channels: tuple[str, ...], columns: Any) -> Select[Any]:
    return (
        select(columns)
        .select_from(MessageEvent)
        .join(Message, Message.id == MessageEvent.message_id)
        .where(
            Message.channel.in_(channels),
            MessageEvent.type.in_(message_event_types(types)),
        )
    )


def _engagement_exists(
    types: tuple[str, ...],
    channels: tuple[str, ...],
    since: datetime | None,
    positive: bool,
    strict: bool = False,
) -> ColumnElement[bool]:
    ids = _engaged_query(types, channels, Message.contact_id)
    correlated = _engaged_query(types, channels, literal(1)).where(Message.contact_id == Contact.id)
    if since is not None:
        after = MessageEvent.occurred_at > since if strict else MessageEvent.occurred_at >= since
        ids, correlated = ids.where(after), correlated.where(after)
    return _ids_or_exists(ids, correlated, positive)


def _last_engaged(cond: FieldCond, now: datetime, positive: bool) -> ColumnElement[bool]:
    types = ENGAGEMENT["engaged"]
    op, value = cond.compare.op, cond.compare.value
    chans = cond.channels
    if op == "exists":
        return (
            _engagement_exists(types, chans, None, positive)
            if value
            else not_(_engagement_exists(types, chans, None, not positive))
        )
    if op == "within":
        return _engagement_exists(types, chans, now - value, positive)
    if op == "after":
        return _engagement_exists(types, chans, value, positive, strict=True)
    cutoff = now - value if op == "more_than_ago" else value
    return and_(
        _engagement_exists(types, chans, None, positive),
        not_(_engagement_exists(types, chans, cutoff, not positive)),
    )


def _event(cond: EventCond, now: datetime, positive: bool) -> ColumnElement[bool]:
    if cond.negate:
        positive = not positive
    filters: list[ColumnElement[bool]] = [Event.type == cond.event_type]
    if cond.within is not None:
        filters.append(Event.occurred_at >= now - cond.within)
    for prop in cond.where:
        filters.append(json_compare(Event.payload, ("properties", *prop.path), prop.compare))
    ids = select(Event.contact_id).where(Event.contact_id.is_not(None), *filters)
    if cond.at_least == 1:
        correlated = select(literal(1)).select_from(Event)
        correlated = correlated.where(Event.contact_id == Contact.id, *filters)
        found = _ids_or_exists(ids, correlated, positive)
    else:
        grouped = ids.group_by(Event.contact_id).having(func.count() >= cond.at_least)
        found = Contact.id.in_(grouped)
    return not_(found) if cond.negate else found


def _engagement(cond: EngagementCond, now: datetime, positive: bool) -> ColumnElement[bool]:
    since = now - cond.within if cond.within is not None else None
    if cond.at_least == 1:
        return _engagement_exists(cond.types, cond.channels, since, positive)
    query = _engaged_query(cond.types, cond.channels, Message.contact_id)
    if since is not None:
        query = query.where(MessageEvent.occurred_at >= since)
    return Contact.id.in_(query.group_by(Message.contact_id).having(func.count() >= cond.at_least))


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


def suppressed_sql(channel: str, positive: bool = True) -> ColumnElement[bool]:
    """One of the contact's addresses for the channel is in suppressions (never NULL)."""
    chans = SUPPRESSION_CHANNELS[channel]
    parts = []
    for address in addresses_sql(channel):
        if positive:
            listed = select(Suppression.address).where(Suppression.channel.in_(chans))
            parts.append(and_(address.is_not(None), address.in_(listed)))
        else:
            parts.append(
                exists(
                    select(literal(1))
                    .select_from(Suppression)
                    .where(Suppression.channel.in_(chans), Suppression.address == address)
                )
            )
    return or_(*parts)


def consent_denied_sql(channel: str, positive: bool = True) -> ColumnElement[bool]:
    """Marketing consent for the channel is recorded as denied."""
    base = (Consent.channel == channel, Consent.purpose == "marketing", Consent.status == "denied")
    return _ids_or_exists(
        select(Consent.contact_id).where(*base),
        select(literal(1)).select_from(Consent).where(Consent.contact_id == Contact.id, *base),
        positive,
    )


def _reach(cond: ReachCond, positive: bool) -> ColumnElement[bool]:
    parts = []
    for channel in cond.channels:
        if cond.kind == "has_address":
            parts.append(has_address_sql(channel))
        elif cond.kind == "suppressed":
            parts.append(suppressed_sql(channel, positive))
        else:
            parts.append(
                and_(
                    has_address_sql(channel),
                    not_(suppressed_sql(channel, not positive)),
                    not_(consent_denied_sql(channel, not positive)),
                    not_(unreachable_sql(RULE_CHANNELS[channel])),
                )
            )
    return or_(*parts)


def _in_segment(cond: InSegment, positive: bool) -> ColumnElement[bool]:
    base = (Segment.key == cond.key, SegmentMembership.exited_at.is_(None))
    joined = select(SegmentMembership.contact_id).join(
        Segment, Segment.id == SegmentMembership.segment_id
    )
    correlated = (
        select(literal(1))
        .select_from(SegmentMembership)
        .join(Segment, Segment.id == SegmentMembership.segment_id)
        .where(SegmentMembership.contact_id == Contact.id, *base)
    )
    return _ids_or_exists(joined.where(*base), correlated, positive)


def condition(rule: Rule, now: datetime, positive: bool = True) -> ColumnElement[bool]:
    """The rule as a boolean SQL expression over the contacts table (never NULL).

    `positive` is False under an odd number of negations; it only picks the SQL shape
    (IN a set vs correlated EXISTS) that PostgreSQL plans best there, not the meaning.
    """
    if isinstance(rule, All):
        if not rule.children:
            return true()
        return and_(*(condition(c, now, positive) for c in rule.children))
    if isinstance(rule, Any_):
        if not rule.children:
            return false()
        return or_(*(condition(c, now, positive) for c in rule.children))
    if isinstance(rule, Not):
        return not_(condition(rule.child, now, not positive))
    if isinstance(rule, FieldCond):
        return _field(rule, now, positive)
    if isinstance(rule, EventCond):
        return _event(rule, now, positive)
    if isinstance(rule, EngagementCond):
        return _engagement(rule, now, positive)
    if isinstance(rule, ReachCond):
        return _reach(rule, positive)
    return _in_segment(rule, positive)


def _as_set(rule: Rule, now: datetime) -> Select[Any] | None:
    """The contact ids of a positive event / engagement / membership test, or None."""
    if isinstance(rule, EventCond) and not rule.negate:
        ids = select(Event.contact_id).where(
            Event.contact_id.is_not(None), Event.type == rule.event_type
        )
        if rule.within is not None:
            ids = ids.where(Event.occurred_at >= now - rule.within)
        for prop in rule.where:
            ids = ids.where(json_compare(Event.payload, ("properties", *prop.path), prop.compare))
        if rule.at_least > 1:
            ids = ids.group_by(Event.contact_id).having(func.count() >= rule.at_least)
        return ids
    if isinstance(rule, EngagementCond):
        ids = _engaged_query(rule.types, rule.channels, Message.contact_id)
        if rule.within is not None:
            ids = ids.where(MessageEvent.occurred_at >= now - rule.within)
        if rule.at_least > 1:
            ids = ids.group_by(Message.contact_id).having(func.count() >= rule.at_least)
        return ids
    if isinstance(rule, InSegment):
        return (
            select(SegmentMembership.contact_id)
            .join(Segment, Segment.id == SegmentMembership.segment_id)
            .where(Segment.key == rule.key, SegmentMembership.exited_at.is_(None))
        )
    return None


def compile_rule(rule: Rule, now: datetime) -> Select[int]:
    """SELECT the id of every contact the rule matches at `now`.

    A top-level `any` whose children include event / engagement / membership tests becomes
    a UNION of those id sets (plus one scan of contacts for the other children), the shape
    a hand-written query takes; everything else is a filtered scan of contacts.
    """
    if isinstance(rule, Any_) and rule.children:
        sets = [(child, _as_set(child, now)) for child in rule.children]
        parts: list[Select[Any]] = [ids for _, ids in sets if ids is not None]
        if parts:
            rest = [child for child, ids in sets if ids is None]
            if rest:
                parts.append(select(Contact.id).where(or_(*(condition(c, now) for c in rest))))
            ids_union = union(*parts).subquery()
            return select(ids_union.c[0])
    return select(Contact.id).where(condition(rule, now))


@dataclass(frozen=True)
class PreparedRule:
    """A rule compiled once for any instant: ``statement`` holds each ``now - window`` it
    needs as a bound parameter, ``params(now)`` gives their values (the same SELECT as
    ``compile_rule(rule, now)``; built and cache-keyed once, executed many times)."""

    statement: Select[int]
    windows: tuple[tuple[str, timedelta], ...]

    def params(self, now: datetime) -> dict[str, datetime]:
        """The statement's parameters at ``now``."""
        return {name: now - window for name, window in self.windows}


class _Now:
    """Stands in for ``now`` while a rule compiles: ``now - window`` (the only way the
    compiler uses it) becomes a bound parameter named after its place."""

    def __init__(self) -> None:
        self.windows: list[tuple[str, timedelta]] = []

    def __sub__(self, window: timedelta) -> Any:
        name = f"rule_since_{len(self.windows)}"
        self.windows.append((name, window))
        return bindparam(name)


def prepare_rule(rule: Rule) -> PreparedRule:
    """compile_rule with ``now`` left as parameters (PreparedRule.params)."""
    now = _Now()
    statement = compile_rule(rule, cast(datetime, now))
    return PreparedRule(statement, tuple(now.windows))
