"""Why a contact is or is not in a segment: every rule node with its result and the value seen.

Results come from the incremental evaluator (automation.segments.evaluate.evaluate) run on
each node, so the explanation always agrees with what the engine decides; this module only
adds the human label and the value each leaf looked at.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.models import Segment, SegmentMembership
from automation.dsl.durations import format_duration
from automation.segments import rfm
from automation.segments.evaluate import (
    MISSING,
    Facts,
    evaluate,
    has_address,
    is_suppressed,
    json_compare,
    json_get,
    load_facts,
    needs_of,
)
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
from automation.segments.store import rule_of


@dataclass
class Node:
    """One rule node: what it tests, whether it matched, and the value it looked at."""

    label: str
    result: bool
    value: Any = None
    children: list[Node] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (children nested)."""
        data: dict[str, Any] = {"rule": self.label, "result": self.result, "value": self.value}
        if self.children:
            data["children"] = [child.to_dict() for child in self.children]
        return data


@dataclass
class Explanation:
    """The verdict for one contact and one segment, with the per-node trace."""

    segment: str
    contact_id: int
    matches: bool
    member: bool  # stored open membership (may lag behind `matches` until the next refresh)
    tree: Node

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "segment": self.segment,
            "contact_id": self.contact_id,
            "matches": self.matches,
            "member": self.member,
            "tree": self.tree.to_dict(),
        }


def _duration(value: timedelta) -> str:
    """Whole days as "90d" (how rules are written), anything else as "1h30m"."""
    if value.total_seconds() % 86400 == 0:
        return f"{value.days}d"
    return format_duration(value)


def _compare_text(cmp: Compare) -> str:
    value = cmp.value
    if isinstance(value, timedelta):
        shown = _duration(value)
    elif isinstance(value, datetime):
        shown = value.isoformat()
    elif isinstance(value, tuple):
        shown = "[" + ", ".join(str(v) for v in value) + "]"
    else:
        shown = str(value).lower() if isinstance(value, bool) else str(value)
    return f"{cmp.op.replace('_', ' ')} {shown}"


def _plain(value: Any) -> Any:
    if value is MISSING:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _field_value(cond: FieldCond, facts: Facts, now: datetime) -> Any:
    contact = facts.contact
    if cond.kind == "json":
        return _plain(json_get(contact.attributes, cond.path))
    if cond.kind == "list":
        return list(contact.tags or [])
    if cond.kind == "rfm":
        return rfm.score(cond.field, contact, now)
    if cond.kind == "engaged":
        times = [at for _, ch, at in facts.engagements if ch in cond.channels]
        return _plain(max(times)) if times else None
    return _plain(getattr(contact, cond.field))


def _field_label(cond: FieldCond) -> str:
    name = cond.field
    if cond.path:
        name = "attributes." + ".".join(cond.path)
    elif cond.kind == "list":
        name = "tags"
    elif cond.channels:
        name = f"{cond.field}.{','.join(cond.channels)}"
    return f"{name} {_compare_text(cond.compare)}"


def _event_count(cond: EventCond, facts: Facts, now: datetime) -> int:
    since = now - cond.within if cond.within is not None else None
    count = 0
    for occurred_at, payload in facts.events.get(cond.event_type, []):
        if since is not None and occurred_at < since:
            continue
        if all(
            json_compare(json_get(payload, ("properties", *p.path)), p.compare) for p in cond.where
        ):
            count += 1
    return count


def _event_label(cond: EventCond) -> str:
    head = "not performed" if cond.negate else "performed"
    parts = [f"{head} {cond.event_type}"]
    if cond.where:
        filters = ", ".join(f"{'.'.join(p.path)} {_compare_text(p.compare)}" for p in cond.where)
        parts.append(f"where {filters}")
    if cond.at_least != 1:
        parts.append(f"at least {cond.at_least} times")
    if cond.within is not None:
        parts.append(f"within {_duration(cond.within)}")
    return " ".join(parts)


def _engagement_count(cond: EngagementCond, facts: Facts, now: datetime) -> int:
    since = now - cond.within if cond.within is not None else None
    return sum(
        1
        for type_, channel, at in facts.engagements
        if type_ in cond.types and channel in cond.channels and (since is None or at >= since)
    )


def _engagement_label(cond: EngagementCond) -> str:
    kinds = "/".join(cond.types)
    text = f"{kinds} on {','.join(cond.channels)}"
    if cond.at_least != 1:
        text += f" at least {cond.at_least} times"
    if cond.within is not None:
        text += f" within {_duration(cond.within)}"
    return text


def _reach_value(cond: ReachCond, facts: Facts) -> dict[str, Any]:
    contact = facts.contact
    detail: dict[str, Any] = {}
    for channel in cond.channels:
        detail[channel] = {
            "address": has_address(contact, channel),
            "suppressed": is_suppressed(contact, channel, facts),
            "marketing_consent_denied": channel in facts.denied,
        }
    return detail


def explain_node(rule: Rule, facts: Facts, now: datetime) -> Node:
    """The trace of one rule node (and its children) for the loaded facts."""
    result = evaluate(rule, facts, now)
    if isinstance(rule, All | Any_):
        word = "all of" if isinstance(rule, All) else "any of"
        kids = [explain_node(child, facts, now) for child in rule.children]
        passed = sum(1 for kid in kids if kid.result)
        return Node(word, result, f"{passed}/{len(kids)} true", kids)
    if isinstance(rule, Not):
        return Node("not", result, None, [explain_node(rule.child, facts, now)])
    if isinstance(rule, FieldCond):
        return Node(_field_label(rule), result, _field_value(rule, facts, now))
    if isinstance(rule, EventCond):
        return Node(_event_label(rule), result, {"count": _event_count(rule, facts, now)})
    if isinstance(rule, EngagementCond):
        return Node(_engagement_label(rule), result, {"count": _engagement_count(rule, facts, now)})
    if isinstance(rule, ReachCond):
        label = f"{rule.kind.replace('_', ' ')} {','.join(rule.channels)}"
        return Node(label, result, _reach_value(rule, facts))
    assert isinstance(rule, InSegment)
    return Node(f"in segment {rule.key}", result, {"member": rule.key in facts.segments})


def explain(session: Session, segment: Segment, contact_id: int, now: datetime) -> Explanation:
    """Evaluate ``segment`` for one contact and return the verdict with the per-node trace."""
    rule = rule_of(segment)
    facts = load_facts(session, contact_id, needs_of([rule]), now)
    if facts is None:
        raise LookupError(f"contact {contact_id} does not exist")
    tree = explain_node(rule, facts, now)
    member = session.scalar(
        select(SegmentMembership.id).where(
            SegmentMembership.segment_id == segment.id,
            SegmentMembership.contact_id == contact_id,
            SegmentMembership.exited_at.is_(None),
        )
    )
    return Explanation(segment.key, contact_id, tree.result, member is not None, tree)
