"""Sequences in the database: apply definitions as versions, pause/resume, load versions."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session, defer

from automation.core.clock import now
from automation.core.models import Enrollment, Sequence, SequenceVersion
from automation.core.processing import in_batch, lasting_memo
from automation.sequences.schema import (
    SequenceDefinition,
    WaitUntilStep,
    definition_hash,
    parse_sequence,
)

ApplyStatus = Literal["created", "changed", "unchanged"]
_cache: dict[str, SequenceDefinition] = {}


class SequenceNotFound(LookupError):
    """No sequence with that key; the message names the fix."""

    def __init__(self, key: str) -> None:
        super().__init__(f"no sequence {key!r}: check `mactl sequences list` or apply its YAML")
        self.key = key


@dataclass
class ApplyResult:
    """What apply_definition did: the sequence, its current version and the outcome."""

    sequence: Sequence
    version: SequenceVersion
    status: ApplyStatus


@dataclass
class SequenceSummary:
    """One line of `mactl sequences list`."""

    key: str
    status: str
    version: int | None
    enrollments: dict[str, int]


def _current_version(session: Session, sequence: Sequence) -> SequenceVersion | None:
    if sequence.current_version_id is None:
        return None
    return session.get(SequenceVersion, sequence.current_version_id)


def find_sequence(session: Session, key: str) -> Sequence | None:
    """The sequence with ``key``, or None."""
    return session.scalar(select(Sequence).where(Sequence.key == key))


def get_sequence(session: Session, key: str) -> Sequence:
    """The sequence with ``key``; raises SequenceNotFound."""
    sequence = find_sequence(session, key)
    if sequence is None:
        raise SequenceNotFound(key)
    return sequence


def plan_definition(session: Session, definition: SequenceDefinition) -> ApplyStatus:
    """What apply_definition would do, without writing: created, changed or unchanged."""
    sequence = find_sequence(session, definition.key)
    if sequence is None:
        return "created"
    current = _current_version(session, sequence)
    if current is not None and current.definition_hash == definition.definition_hash:
        return "unchanged"
    return "changed"


def apply_definition(session: Session, definition: SequenceDefinition) -> ApplyResult:
    """Create the sequence or, when the definition hash changed, a new current version.

    Running enrollments keep their version_id, so they finish on the version they started
    on. The pause state is kept. Flushes, never commits.
    """
    digest = definition.definition_hash
    sequence = find_sequence(session, definition.key)
    status: ApplyStatus = "changed"
    if sequence is None:
        sequence = Sequence(key=definition.key, status="active")
        session.add(sequence)
        session.flush()
        status = "created"
    current = _current_version(session, sequence)
    if current is not None and current.definition_hash == digest:
        return ApplyResult(sequence, current, "unchanged")
    number = (
        session.scalar(
            select(func.max(SequenceVersion.version)).where(
                SequenceVersion.sequence_id == sequence.id
            )
        )
        or 0
    ) + 1
    version = SequenceVersion(
        sequence_id=sequence.id, version=number, definition=definition.raw, definition_hash=digest
    )
    session.add(version)
    session.flush()
    sequence.current_version_id = version.id
    sequence.updated_at = now()
    session.flush()
    _cache[digest] = definition
    return ApplyResult(sequence, version, status)


def set_status(session: Session, key: str, status: Literal["active", "paused"]) -> Sequence:
    """Pause (no new enrollments, running ones hold) or resume a sequence."""
    sequence = get_sequence(session, key)
    sequence.status = status
    sequence.updated_at = now()
    session.flush()
    return sequence


def pause_sequence(session: Session, key: str) -> Sequence:
    """Stop enrolling and hold running enrollments where they are."""
    return set_status(session, key, "paused")


def resume_sequence(session: Session, key: str) -> Sequence:
    """Enrol again; held enrollments continue at the next scheduler pass."""
    return set_status(session, key, "active")


def version_definition(version: SequenceVersion) -> SequenceDefinition:
    """The parsed definition of a stored version (cached by definition hash)."""
    cached = _cache.get(version.definition_hash)
    if cached is not None:
        return cached
    definition = parse_sequence(version.definition, f"sequence version {version.id}")
    if definition_hash(definition.raw) == version.definition_hash:
        _cache[version.definition_hash] = definition
    return definition


def load_version(session: Session, version_id: int) -> SequenceDefinition:
    """The parsed definition of version ``version_id`` (in an event batch, from the
    versions the process keeps while no definition changes)."""
    if in_batch(session):
        known = _batch_versions(session).get(version_id)
        if known is not None:
            return known
    version = session.get(SequenceVersion, version_id)
    if version is None:
        raise LookupError(f"sequence version {version_id} does not exist")
    return version_definition(version)


def active_definitions(
    session: Session,
) -> list[tuple[Sequence, SequenceVersion, SequenceDefinition]]:
    """Every active sequence with its current version and parsed definition."""
    rows = session.execute(
        select(Sequence, SequenceVersion)
        .join(SequenceVersion, SequenceVersion.id == Sequence.current_version_id)
        .where(Sequence.status == "active")
        .order_by(Sequence.id)
        .options(defer(SequenceVersion.definition))  # parsed once per hash (version_definition)
    ).all()
    return [(seq, ver, version_definition(ver)) for seq, ver in rows]


def active_snapshot(
    session: Session,
) -> list[tuple[Sequence, SequenceVersion, SequenceDefinition]]:
    """active_definitions as copies attached to no session (the sequence's id, key,
    status and current version; the version's id, sequence, number and hash), to be kept
    across event batches (automation.core.processing.lasting_memo)."""
    return [
        (
            Sequence(id=seq.id, key=seq.key, status=seq.status,
                     current_version_id=seq.current_version_id),
            _detached_version(ver, definition),
            definition,
        )
        for seq, ver, definition in active_definitions(session)
    ]  # fmt: skip


def _detached_version(version: SequenceVersion, definition: SequenceDefinition) -> SequenceVersion:
    copy = SequenceVersion(
        id=version.id,
        sequence_id=version.sequence_id,
        version=version.version,
        definition_hash=version.definition_hash,
    )
    if _cache.get(version.definition_hash) is not definition:  # not cached by its hash
        copy.definition = version.definition  # version_definition parses the copy again
    return copy


def batch_definitions(
    session: Session,
) -> list[tuple[Sequence, SequenceVersion, SequenceDefinition]]:
    """The active sequences for an event batch (kept by the process while no definition
    changes; outside a batch, read now)."""
    return lasting_memo(session, "sequences", lambda: active_snapshot(session))


def batch_sequence(session: Session, sequence_id: int) -> Sequence | None:
    """In an event batch: the sequence if it is active (a copy, see active_snapshot), else
    None. Outside a batch: the stored sequence, whatever its status."""
    if not in_batch(session):
        return session.get(Sequence, sequence_id)
    for sequence, _version, _definition in batch_definitions(session):
        if sequence.id == sequence_id:
            return sequence
    return None


def _all_versions(session: Session) -> dict[int, SequenceDefinition]:
    return {
        version.id: version_definition(version)
        for version in session.scalars(
            select(SequenceVersion).options(defer(SequenceVersion.definition))
        )
    }


def _batch_versions(session: Session) -> dict[int, SequenceDefinition]:
    versions: dict[int, SequenceDefinition] = lasting_memo(
        session, "sequence_versions", lambda: _all_versions(session)
    )
    return versions


@dataclass(frozen=True)
class Reactions:
    """The event types any stored sequence version exits on, waits for, or counts as a goal."""

    exits: frozenset[str]
    waits: frozenset[str]
    goals: frozenset[str]


def _reactions(definitions: Iterable[SequenceDefinition]) -> Reactions:
    exits: set[str] = set()
    waits: set[str] = set()
    goals: set[str] = set()
    for definition in definitions:
        exits.update(condition.event for condition in definition.exit_on)
        waits.update(s.event for _, s in definition.all_steps() if isinstance(s, WaitUntilStep))
        if definition.analytics.goal is not None:
            goals.add(definition.analytics.goal.event)
    return Reactions(frozenset(exits), frozenset(waits), frozenset(goals))


def may_react(session: Session, kind: str, event_type: str) -> bool:
    """False when no sequence version (running or not) has a ``kind`` reaction ("exits",
    "waits", "goals") to ``event_type``, so a handler can skip its queries. Known once per
    event batch (automation.core.processing); outside a batch always True (not looked up).
    """
    if not in_batch(session):
        return True
    types: frozenset[str] = getattr(_batch_reactions(session), kind)
    return event_type in types


def waited_types(session: Session) -> frozenset[str]:
    """The event types some sequence version waits for (wait_until), once per event batch."""
    return _batch_reactions(session).waits


def _batch_reactions(session: Session) -> Reactions:
    reactions: Reactions = lasting_memo(
        session, "sequence_reactions", lambda: _reactions(_batch_versions(session).values())
    )
    return reactions


def list_sequences(session: Session) -> list[SequenceSummary]:
    """Every sequence with its status, current version number and enrollments per state."""
    counts: dict[int, dict[str, int]] = {}
    for sequence_id, state, count in session.execute(
        select(Enrollment.sequence_id, Enrollment.state, func.count()).group_by(
            Enrollment.sequence_id, Enrollment.state
        )
    ):
        counts.setdefault(sequence_id, {})[state] = count
    result = []
    for sequence in session.scalars(select(Sequence).order_by(Sequence.key)):
        current = _current_version(session, sequence)
        result.append(
            SequenceSummary(
                key=sequence.key,
                status=sequence.status,
                version=current.version if current else None,
                enrollments=counts.get(sequence.id, {}),
            )
        )
    return result
