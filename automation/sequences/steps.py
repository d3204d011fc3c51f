"""The sequence step model: triggers, steps, conditions and the validated definition."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Literal

from automation.analytics.definition import Analytics
from automation.core import vocabulary
from automation.dsl.filters import PropertyFilter, dig
from automation.dsl.filters import same as same_value
from automation.dsl.yamlload import LocatedError, canonical_json
from automation.sequences import cursor as cur

CHANNELS = vocabulary.CHANNELS
PURPOSES = vocabulary.PURPOSES
#: Engagement words an ``if:`` can test on a send step (meanings: vocabulary.ENGAGEMENT).
ENGAGEMENT = ("clicked", "opened", "replied")
#: {clicked: email} / {opened: any} are segment-rule engagement conditions, not step refs
RULE_CHANNELS = tuple(vocabulary.RULE_CHANNELS)
RESERVED_IDS = ("previous", *RULE_CHANNELS)


class SequenceError(LocatedError):
    """A definition that cannot be used: ``file:line: problem. Fix: ...``."""


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
    #: ``pool: wait``: an advertising SMS pool that cannot reach its minimum keeps this row
    #: for another window instead of sending its fallback.
    pool_wait: bool = False

    def outbox_rendered(self) -> dict[str, str]:
        """What the outbox row carries from the step before it is rendered."""
        return {"pool": "wait"} if self.pool_wait else {}


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
        left = dig(trigger or {}, key)
        right = dig(event, key)
        if left is None or right is None:
            if strict:
                return False
            continue
        if not same_value(left, right):
            return False
    return True
