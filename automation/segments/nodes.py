"""Segment rule nodes: the words of the rule language and the typed tree a rule parses to."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from automation.core.errors import DefinitionError
from automation.core.vocabulary import ENGAGEMENT
from automation.dsl.filters import Compare as Compare
from automation.dsl.filters import PropertyFilter as PropertyFilter

LOCAL_TZ = ZoneInfo("Asia/Ho_Chi_Minh")  # naive dates in rules are Vietnam time

OPERATORS = (
    "eq", "ne", "in", "not_in", "contains", "gt", "gte", "lt", "lte",
    "exists", "before", "after", "within", "more_than_ago",
)  # fmt: skip
NUMBER_OPS = ("eq", "ne", "in", "gt", "gte", "lt", "lte", "exists")
TEXT_OPS = ("eq", "ne", "in", "contains", "exists")
DATE_OPS = ("before", "after", "within", "more_than_ago", "exists")
JSON_OPS = ("eq", "ne", "in", "not_in", "contains", "gt", "gte", "lt", "lte", "exists")
LIST_OPS = ("contains",)
RELATIVE_OPS = ("within", "more_than_ago")

FieldKind = Literal["text", "number", "date", "list", "json", "rfm", "engaged"]

TEXT_FIELDS = (
    "email", "phone", "zalo_user_id", "facebook_psid",
    "first_name", "last_name", "locale", "timezone",
)  # fmt: skip
NUMBER_FIELDS = ("orders_count", "total_spent")
DATE_FIELDS = ("created_at", "first_order_at", "last_order_at")
RFM_FIELDS = ("rfm_recency", "rfm_frequency", "rfm_monetary")
ALIASES = {"recency": "last_order_at", "frequency": "orders_count", "monetary": "total_spent"}

ENGAGEMENT_KINDS = tuple(ENGAGEMENT)  # opened, clicked, replied, engaged (a "read" is opened)
REACH_KINDS = ("reachable", "has_address", "suppressed")

KEY_RE = re.compile(r"^[^\W\d][\w\-]*$")
SEGMENT_KEY_RE = re.compile(r"^[a-z][a-z0-9_]*$")
MAX_KEY_LENGTH = 100
MAX_DEPTH = 32

Scalar = str | int | float | bool


class RuleError(DefinitionError):
    """A rule that cannot be used; the message says where (file:line) and how to fix it."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(message, where=where)
        self.detail = message


# --- AST ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldCond:
    """A contact field, a custom attribute (attributes.x), an RFM score or last_engaged_at."""

    field: str  # canonical name: column name, rfm_*, last_engaged_at
    kind: FieldKind
    compare: Compare
    path: tuple[str, ...] = ()  # attributes.<path>
    channels: tuple[str, ...] = ()  # last_engaged_at.<channel>


@dataclass(frozen=True)
class EventCond:
    """performed / not_performed: count of matching events in a window."""

    event_type: str
    negate: bool
    at_least: int = 1
    within: timedelta | None = None
    where: tuple[PropertyFilter, ...] = ()


@dataclass(frozen=True)
class EngagementCond:
    """opened / clicked / replied / engaged on message channels, optionally in a window."""

    types: tuple[str, ...]
    channels: tuple[str, ...]
    at_least: int = 1
    within: timedelta | None = None


@dataclass(frozen=True)
class ReachCond:
    """reachable / has_address / suppressed on one channel (or any)."""

    kind: str  # reachable | has_address | suppressed
    channels: tuple[str, ...]  # consent channels: email, sms, zalo, messenger


@dataclass(frozen=True)
class InSegment:
    """Open membership of another segment."""

    key: str
    where: str = ""


@dataclass(frozen=True)
class All:
    """Every child matches (an empty list matches everyone)."""

    children: tuple[Rule, ...]


@dataclass(frozen=True)
class Any_:
    """At least one child matches (an empty list matches no one)."""

    children: tuple[Rule, ...]


@dataclass(frozen=True)
class Not:
    """The child does not match."""

    child: Rule


Rule = FieldCond | EventCond | EngagementCond | ReachCond | InSegment | All | Any_ | Not


@dataclass(frozen=True)
class SegmentDef:
    """A parsed segment file: key, Vietnamese name and description, the rule and its raw form."""

    key: str
    name: str
    description: str | None
    rule: Rule
    raw_rule: Any
    where: str = ""
    references: tuple[InSegment, ...] = field(default=())


# --- walking ------------------------------------------------------------------------------


def walk(rule: Rule) -> list[Rule]:
    """Every node of the rule, depth first."""
    nodes: list[Rule] = [rule]
    if isinstance(rule, (All, Any_)):
        for child in rule.children:
            nodes.extend(walk(child))
    elif isinstance(rule, Not):
        nodes.extend(walk(rule.child))
    return nodes


def references(rule: Rule) -> list[InSegment]:
    """The in_segment conditions of a rule."""
    return [node for node in walk(rule) if isinstance(node, InSegment)]


def depends_on_time(rule: Rule) -> bool:
    """True when the rule's result can change with the passing of time alone.

    Relative dates (within, more_than_ago), event / engagement windows and rfm_recency.
    Membership of a time-based segment is resolved by the store (it needs the other rules).
    """
    for node in walk(rule):
        if isinstance(node, FieldCond) and (
            node.compare.op in RELATIVE_OPS or node.field == "rfm_recency"
        ):
            return True
        if isinstance(node, (EventCond, EngagementCond)) and node.within is not None:
            return True
    return False
