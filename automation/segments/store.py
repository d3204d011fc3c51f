"""Apply segment definitions: create / update Segment rows, validate references and cycles."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, defer

from automation.core.memo import DefinitionMemo
from automation.core.models import Segment
from automation.segments.nodes import (
    Rule as RuleNode,
)
from automation.segments.nodes import (
    RuleError,
    SegmentDef,
    depends_on_time,
    references,
)
from automation.segments.rules import (
    load_rule,
)

Status = Literal["created", "changed", "unchanged"]
_RULE_CACHE: DefinitionMemo[RuleNode] = DefinitionMemo()


def definition_hash(defn: SegmentDef) -> str:
    """sha256 of the canonical JSON of name, description and rule."""
    canonical = json.dumps(
        {"name": defn.name, "description": defn.description, "rule": defn.raw_rule},
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def rule_of(segment: Segment) -> RuleNode:
    """The parsed rule of a stored segment (cached by definition hash)."""
    return _RULE_CACHE.get(
        (segment.key, segment.definition_hash),
        lambda: load_rule(segment.rules, where=f"segment {segment.key}"),
    )


def _graph(session: Session, defs: Sequence[SegmentDef]) -> dict[str, list[tuple[str, str]]]:
    """key -> [(referenced key, where)] over stored segments overlaid with new definitions."""
    graph: dict[str, list[tuple[str, str]]] = {}
    for segment in session.scalars(select(Segment)):
        graph[segment.key] = [(ref.key, ref.where) for ref in references(rule_of(segment))]
    for defn in defs:
        graph[defn.key] = [(ref.key, ref.where) for ref in defn.references]
    return graph


def validate_definitions(session: Session, defs: Sequence[SegmentDef]) -> None:
    """Unknown in_segment keys, duplicate keys and reference cycles raise RuleError."""
    seen: dict[str, str] = {}
    for defn in defs:
        if defn.key in seen:
            raise RuleError(defn.where, f"segment '{defn.key}' is defined twice (also at "
                            f"{seen[defn.key]}); give one of them another key")  # fmt: skip
        seen[defn.key] = defn.where
    graph = _graph(session, defs)
    for refs in graph.values():
        for ref, where in refs:
            if ref not in graph:
                known = ", ".join(sorted(graph)) or "none yet"
                raise RuleError(where, f"in_segment: unknown segment '{ref}'; known: {known}")
    state: dict[str, int] = {}  # 1 visiting, 2 done

    def visit(key: str, trail: list[str]) -> None:
        state[key] = 1
        for ref, where in graph[key]:
            if state.get(ref) == 1:
                cycle = (
                    " -> ".join(trail[trail.index(ref) :] + [key, ref])
                    if ref in trail
                    else (f"{key} -> {ref}")
                )
                raise RuleError(where, f"segments reference each other in a cycle ({cycle}); "
                                "remove one of the in_segment conditions")  # fmt: skip
            if state.get(ref) is None:
                visit(ref, trail + [key])
        state[key] = 2

    for key in sorted(graph):
        if key not in state:
            visit(key, [])


def apply_segment(session: Session, defn: SegmentDef) -> tuple[Status, Segment]:
    """Create or update one segment row (call validate_definitions first for references)."""
    digest = definition_hash(defn)
    segment = session.scalar(select(Segment).where(Segment.key == defn.key))
    if segment is not None and segment.definition_hash == digest:
        return "unchanged", segment
    status: Status = "changed"
    if segment is None:
        segment = Segment(key=defn.key)
        session.add(segment)
        status = "created"
    segment.name = defn.name
    segment.description = defn.description
    segment.rules = defn.raw_rule
    segment.definition_hash = digest
    segment.time_based = depends_on_time(defn.rule)
    _RULE_CACHE.put((defn.key, digest), defn.rule)
    session.flush()
    return status, segment


def apply_segments(session: Session, defs: Sequence[SegmentDef]) -> list[tuple[Status, Segment]]:
    """Validate then apply several definitions; recompute time_based across dependencies.

    Memberships are not refreshed here: call membership.refresh_segment for created or
    changed segments (in dependency_order) when you want them populated now.
    """
    validate_definitions(session, defs)
    results = [apply_segment(session, defn) for defn in defs]
    update_time_based(session)
    return results


def update_time_based(session: Session) -> None:
    """A segment is time-based if its rule is, or if it references a time-based segment."""
    ordered = dependency_order(list(session.scalars(select(Segment))))
    flags: dict[str, bool] = {}
    for segment in ordered:
        rule = rule_of(segment)
        flag = depends_on_time(rule) or any(flags.get(r.key, False) for r in references(rule))
        flags[segment.key] = flag
        if segment.time_based != flag:
            segment.time_based = flag
    session.flush()


def dependency_order(segments: Iterable[Segment]) -> list[Segment]:
    """Segments sorted so that each comes after the segments it references (key order ties)."""
    by_key = {s.key: s for s in sorted(segments, key=lambda s: s.key)}
    ordered: list[Segment] = []
    done: set[str] = set()

    def visit(key: str, stack: frozenset[str]) -> None:
        if key in done or key in stack or key not in by_key:
            return
        for ref in references(rule_of(by_key[key])):
            visit(ref.key, stack | {key})
        done.add(key)
        ordered.append(by_key[key])

    for key in by_key:
        visit(key, frozenset())
    return ordered


def all_segments(session: Session) -> list[tuple[Segment, RuleNode]]:
    """Every stored segment with its parsed rule, in dependency order."""
    query = select(Segment).options(defer(Segment.rules))  # parsed once per hash (rule_of)
    segments = dependency_order(session.scalars(query))
    return [(segment, rule_of(segment)) for segment in segments]


def segment_definitions(session: Session) -> list[tuple[Segment, RuleNode]]:
    """all_segments as copies attached to no session (id, key, name, description, hash
    and time_based; not the refresh times, which change without the definition), to be
    kept across event batches (automation.core.processing.lasting_memo)."""
    return [
        (
            Segment(
                id=segment.id,
                key=segment.key,
                name=segment.name,
                description=segment.description,
                definition_hash=segment.definition_hash,
                time_based=segment.time_based,
            ),
            rule,
        )
        for segment, rule in all_segments(session)
    ]
