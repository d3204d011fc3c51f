"""Incremental evaluation for ONE contact: load its facts with a few queries, test in Python.

The semantics mirror automation/segments/compile.py exactly (a property-based test checks
that both give the same members): NULL / missing values never match, except for `ne` and
`exists: false`; JSON values compare by the literal's type.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, cast, literal, null, select, union_all
from sqlalchemy.orm import Session

from automation.contacts.reachability import is_unreachable
from automation.core.clock import ensure_utc
from automation.core.db import among, arrays_for
from automation.core.models import (
    ChannelReachability,
    Consent,
    Contact,
    Event,
    Message,
    MessageEvent,
    Segment,
    SegmentMembership,
    Suppression,
)
from automation.core.processing import batch_memo
from automation.core.vocabulary import ENGAGEMENT, RULE_CHANNELS, UNREACHABLE
from automation.segments import rfm
from automation.segments.compile import SUPPRESSION_CHANNELS, message_event_types
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
    walk,
)

MISSING = object()
ENGAGED = ENGAGEMENT["engaged"]  # every engagement type a rule can ask about
SUPPRESSIBLE = sorted({ch for chans in SUPPRESSION_CHANNELS.values() for ch in chans})


@dataclass
class Needs:
    """What a set of rules reads, so the loader fetches only that."""

    event_types: dict[str, timedelta | None] = field(default_factory=dict)  # type -> widest window
    engagement: bool = False
    reach: bool = False
    segments: bool = False

    def add(self, rule: Rule) -> None:
        """Merge what one rule reads."""
        for node in walk(rule):
            if isinstance(node, EventCond):
                window = node.within
                if node.event_type in self.event_types:
                    known = self.event_types[node.event_type]
                    window = None if known is None or window is None else max(known, window)
                self.event_types[node.event_type] = window
            elif isinstance(node, EngagementCond) or (
                isinstance(node, FieldCond) and node.kind == "engaged"
            ):
                self.engagement = True
            elif isinstance(node, ReachCond):
                self.reach = True
            elif isinstance(node, InSegment):
                self.segments = True


@dataclass
class Facts:
    """Everything the rules can read about one contact."""

    contact: Contact
    events: dict[str, list[tuple[datetime, Any]]] = field(default_factory=dict)
    engagements: list[tuple[str, str, datetime]] = field(default_factory=list)  # type, channel, at
    suppressions: set[tuple[str, str]] = field(default_factory=set)  # (channel, address)
    denied: set[str] = field(default_factory=set)  # channels with marketing consent denied
    unreachable: set[tuple[str, str]] = field(default_factory=set)  # (message channel, address)
    segments: set[str] = field(default_factory=set)  # keys of open memberships
    open_memberships: dict[int, int] = field(default_factory=dict)  # segment id -> membership id


def needs_of(rules: Iterable[Rule]) -> Needs:
    """The union of what the rules read."""
    needs = Needs()
    for rule in rules:
        needs.add(rule)
    return needs


def addresses(contact: Contact, channel: str) -> list[str]:
    """The contact's addresses for a consent channel (same list as the SQL compiler)."""
    if channel == "email":
        values = [contact.email]
    elif channel == "messenger":
        values = [contact.facebook_psid]
    else:
        phone = contact.phone
        values = [phone, phone.lstrip("+") if phone is not None else None]
        if channel == "zalo":
            values.append(contact.zalo_user_id)
    return [v for v in values if v is not None]


def _cols(kind: str, key: Any, extra: Any, at: Any, payload: Any, contact: Any) -> list[Any]:
    """The six labelled columns every part of the facts UNION ALL returns."""
    return [
        literal(kind).label("kind"),
        key.label("key"),
        extra.label("extra"),
        at.label("at"),
        payload.label("payload"),
        contact.label("contact_id"),
    ]


@functools.lru_cache(maxsize=256)  # one per shape of needs; definitions change it
def _facts_statement(
    event_types: tuple[str, ...],
    windowed: bool,
    engagement: bool,
    reach: bool,
    has_addresses: bool,
    segments: bool,
    arrays: bool,
) -> Any:
    """The facts UNION ALL for one shape of needs, built once; parameters: contact_ids (a
    list), since (when windowed), addresses (a list). Each row names its contact
    (suppressions, which are per address, name none). ``arrays``: the lists travel as
    PostgreSQL arrays (a batch's contacts; core.db.arrays_for), else as expanded IN lists."""

    def contacts_of(column: Any) -> Any:
        return among(column, "contact_ids", arrays)

    parts: list[Any] = []
    no_text = null().cast(String)
    no_time = null().cast(Event.occurred_at.type)
    no_json = null().cast(Event.payload.type)
    no_contact = null().cast(Event.contact_id.type)
    if event_types:
        query = select(
            *_cols("e", Event.type, no_text, Event.occurred_at, Event.payload, Event.contact_id)
        ).where(contacts_of(Event.contact_id), Event.type.in_(list(event_types)))
        if windowed:
            query = query.where(Event.occurred_at >= bindparam("since"))
        parts.append(query)
    if engagement:
        parts.append(
            select(
                *_cols("m", MessageEvent.type, Message.channel, MessageEvent.occurred_at, no_json,
                       Message.contact_id)
            )
            .join(Message, Message.id == MessageEvent.message_id)
            .where(
                contacts_of(Message.contact_id),
                MessageEvent.type.in_(message_event_types(ENGAGED)),
            )
        )  # fmt: skip
    if reach:
        if has_addresses:
            parts.append(
                select(
                    *_cols("s", Suppression.channel, Suppression.address, no_time, no_json,
                           no_contact)
                ).where(
                    Suppression.channel.in_(SUPPRESSIBLE),
                    among(Suppression.address, "addresses", arrays),
                )
            )  # fmt: skip
        parts.append(
            select(*_cols("c", Consent.channel, no_text, no_time, no_json, Consent.contact_id))
            .where(
                contacts_of(Consent.contact_id),
                Consent.purpose == "marketing",
                Consent.status == "denied",
            )
        )
        parts.append(
            select(
                *_cols("r", ChannelReachability.channel, ChannelReachability.address, no_time,
                       no_json, ChannelReachability.contact_id)
            ).where(
                contacts_of(ChannelReachability.contact_id),
                ChannelReachability.state == UNREACHABLE,
            )
        )  # fmt: skip
    if segments:
        parts.append(
            select(
                *_cols(
                    "g",
                    Segment.key,
                    cast(SegmentMembership.segment_id, String)
                    + literal(":")
                    + cast(SegmentMembership.id, String),
                    no_time,
                    no_json,
                    SegmentMembership.contact_id,
                )
            )
            .join(SegmentMembership, SegmentMembership.segment_id == Segment.id)
            .where(
                contacts_of(SegmentMembership.contact_id),
                SegmentMembership.exited_at.is_(None),
            )
        )
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else union_all(*parts)


def load_facts(
    session: Session,
    contact_id: int,
    needs: Needs,
    now: datetime,
    memberships: bool = False,
) -> Facts | None:
    """Load one contact, then everything the rules need in ONE UNION ALL query.

    Two round trips per contact whatever the rules read (one in an event batch once the
    contact is loaded: the batch keeps it). None if the contact is gone.
    With `memberships`, open memberships are loaded (segment id -> membership id) even
    when no rule reads them (evaluate_contact needs them to write transitions).
    """
    return load_facts_of(session, [contact_id], needs, now, memberships).get(contact_id)


def load_facts_of(
    session: Session,
    contact_ids: list[int],
    needs: Needs,
    now: datetime,
    memberships: bool = False,
) -> dict[int, Facts]:
    """load_facts for several contacts: the same ONE UNION ALL query for all of them
    (contacts the batch keeps are not loaded again). contact id -> Facts; gone ones absent."""
    kept: dict[int, Contact] = batch_memo(session, "contacts", dict)
    for contact_id in contact_ids:
        if contact_id not in kept:  # an event batch loaded its contacts up front
            contact = session.get(Contact, contact_id)
            if contact is not None:
                kept[contact_id] = contact  # the identity map holds it weakly: keep it
    found = {c: Facts(kept[c]) for c in contact_ids if c in kept}
    if not found:
        return {}
    mine: set[str] = set()
    if needs.reach:
        mine = {
            a for f in found.values() for ch in SUPPRESSION_CHANNELS
            for a in addresses(f.contact, ch)
        }  # fmt: skip
    windows = list(needs.event_types.values())
    widest = None
    if windows and all(w is not None for w in windows):
        widest = max(w for w in windows if w is not None)
    statement = _facts_statement(
        tuple(sorted(needs.event_types)), widest is not None, needs.engagement, needs.reach,
        bool(mine), needs.segments or memberships, arrays_for(session, len(found)),
    )  # fmt: skip
    if statement is None:
        return found
    params: dict[str, Any] = {"contact_ids": sorted(found)}
    if mine:
        params["addresses"] = sorted(mine)
    if widest is not None:
        params["since"] = now - widest
    rows: list[Any] = list(session.execute(statement, params))
    for kind, key, extra, at, payload, contact_id in rows:
        if kind == "s":  # per address: each contact's own addresses pick theirs
            for facts in found.values():
                facts.suppressions.add((key, extra))
            continue
        facts = found[contact_id]
        if kind == "e":
            facts.events.setdefault(key, []).append((ensure_utc(at), payload))
        elif kind == "m":
            facts.engagements.append((key.removeprefix("message."), extra, ensure_utc(at)))
        elif kind == "c":
            facts.denied.add(key)
        elif kind == "r":
            facts.unreachable.add((key, extra))
        else:
            segment_id, _, membership_id = extra.partition(":")
            facts.segments.add(key)
            facts.open_memberships[int(segment_id)] = int(membership_id)
    return found


def matches(session: Session, rule: Rule, contact_id: int, now: datetime) -> bool:
    """True when the contact matches the rule at `now` (incremental: one contact)."""
    facts = load_facts(session, contact_id, needs_of([rule]), now)
    return facts is not None and evaluate(rule, facts, now)


# --- evaluation ---------------------------------------------------------------------------


def evaluate(rule: Rule, facts: Facts, now: datetime) -> bool:
    """Evaluate the AST against loaded facts."""
    if isinstance(rule, All):
        return all(evaluate(c, facts, now) for c in rule.children)
    if isinstance(rule, Any_):
        return any(evaluate(c, facts, now) for c in rule.children)
    if isinstance(rule, Not):
        return not evaluate(rule.child, facts, now)
    if isinstance(rule, FieldCond):
        return _field(rule, facts, now)
    if isinstance(rule, EventCond):
        return _event(rule, facts, now)
    if isinstance(rule, EngagementCond):
        since = now - rule.within if rule.within is not None else None
        count = sum(
            1
            for type_, channel, at in facts.engagements
            if type_ in rule.types and channel in rule.channels and (since is None or at >= since)
        )
        return count >= rule.at_least
    if isinstance(rule, ReachCond):
        return any(_reach(rule.kind, channel, facts) for channel in rule.channels)
    return rule.key in facts.segments


def json_get(doc: Any, path: tuple[str, ...]) -> Any:
    """The value at path, or MISSING."""
    current = doc
    for part in path:
        if not isinstance(current, dict) or part not in current:
            return MISSING
        current = current[part]
    return current


def json_kind(value: Any) -> str:
    """The JSON kind name used by both evaluators."""
    if value is MISSING:
        return "missing"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _array_has(value: Any, needle: Any) -> bool:
    if not isinstance(value, list):
        return False
    if isinstance(needle, str):
        return any(isinstance(e, str) and e == needle for e in value)
    return any(json_kind(e) == "number" and float(e) == float(needle) for e in value)


def json_compare(value: Any, cmp: Compare) -> bool:
    """Compare a JSON value by the literal's type (mirrors sqljson.json_compare)."""
    kind = json_kind(value)
    op, expected = cmp.op, cmp.value
    if op == "exists":
        return (kind not in ("missing", "null")) is bool(expected)
    if op == "ne":
        return not json_compare(value, Compare("eq", expected))
    if op == "in":
        return any(json_compare(value, Compare("eq", v)) for v in expected)
    if op == "not_in":
        return not json_compare(value, Compare("in", expected))
    if op == "contains":
        if isinstance(expected, str) and kind == "string":
            return expected in value
        return kind == "array" and _array_has(value, expected)
    if isinstance(expected, bool):
        return kind == ("true" if expected else "false")
    if isinstance(expected, str):
        return kind == "string" and value == expected
    return kind == "number" and _ordered(float(value), op, expected)


def _ordered(value: Any, op: str, expected: Any) -> bool:
    if op == "eq":
        return bool(value == expected)
    if op == "gt":
        return bool(value > expected)
    if op == "gte":
        return bool(value >= expected)
    if op == "lt":
        return bool(value < expected)
    if op == "lte":
        return bool(value <= expected)
    raise ValueError(f"not an ordering operator: {op}")


def column_compare(value: Any, cmp: Compare, now: datetime) -> bool:
    """Compare a text / number / date value (mirrors compile._column_compare)."""
    op, expected = cmp.op, cmp.value
    if op == "exists":
        return (value is not None) is bool(expected)
    if op == "ne":
        return not column_compare(value, Compare("eq", expected), now)
    if value is None:
        return False
    if isinstance(value, datetime):
        value = ensure_utc(value)
    if op == "in":
        return value in expected
    if op == "contains":
        return bool(expected in value)
    if op == "within":
        return bool(value >= now - expected)
    if op == "more_than_ago":
        return bool(value < now - expected)
    if op == "before":
        return bool(value < expected)
    if op == "after":
        return bool(value > expected)
    return _ordered(value, op, expected)


def _field(cond: FieldCond, facts: Facts, now: datetime) -> bool:
    contact = facts.contact
    if cond.kind == "json":
        return json_compare(json_get(contact.attributes, cond.path), cond.compare)
    if cond.kind == "list":
        return _array_has(contact.tags, cond.compare.value)
    if cond.kind == "rfm":
        return column_compare(rfm.score(cond.field, contact, now), cond.compare, now)
    if cond.kind == "engaged":
        times = [at for type_, ch, at in facts.engagements if ch in cond.channels]
        return column_compare(max(times) if times else None, cond.compare, now)
    return column_compare(getattr(contact, cond.field), cond.compare, now)


def _event(cond: EventCond, facts: Facts, now: datetime) -> bool:
    since = now - cond.within if cond.within is not None else None
    count = 0
    for occurred_at, payload in facts.events.get(cond.event_type, []):
        if since is not None and occurred_at < since:
            continue
        if all(
            json_compare(json_get(payload, ("properties", *p.path)), p.compare) for p in cond.where
        ):
            count += 1
    found = count >= cond.at_least
    return not found if cond.negate else found


def has_address(contact: Contact, channel: str) -> bool:
    """True when the contact has a usable address on the reach channel."""
    if channel == "email":
        values = [contact.email]
    elif channel == "messenger":
        values = [contact.facebook_psid]
    else:
        values = [contact.phone] + ([contact.zalo_user_id] if channel == "zalo" else [])
    return any(v is not None and v != "" for v in values)


def is_suppressed(contact: Contact, channel: str, facts: Facts) -> bool:
    """True when one of the contact's addresses on the channel is suppressed."""
    mine = addresses(contact, channel)
    return any(
        (ch, addr) in facts.suppressions for ch in SUPPRESSION_CHANNELS[channel] for addr in mine
    )


def _reach(kind: str, channel: str, facts: Facts) -> bool:
    contact = facts.contact
    if kind == "has_address":
        return has_address(contact, channel)
    if kind == "suppressed":
        return is_suppressed(contact, channel, facts)
    return (
        has_address(contact, channel)
        and not is_suppressed(contact, channel, facts)
        and channel not in facts.denied
        and not is_unreachable(contact, RULE_CHANNELS[channel], facts.unreachable)
    )
