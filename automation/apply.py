"""`mactl apply`: load segment and sequence YAML, validate all of it, plan, then write once.

Every file under the given paths is read (``*.yaml`` / ``*.yml``, folders recursively);
its kind comes from the top-level key: ``segment:`` or ``sequence:``. Nothing is written
unless every document is valid: segment rules parse, sequences match the schema, every
template a sequence sends renders against sample data on each channel it may use
(fallbacks included), and every segment a rule or sequence refers to exists (in the
files or already in the database). The plan says, per object, created / changed /
unchanged and, per segment, how many contacts match it now. Then everything is written
in one transaction (unless ``dry_run``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core.clock import now as clock_now
from automation.core.errors import DefinitionError
from automation.core.models import Segment
from automation.core.vocabulary import MARKETING
from automation.dsl.yamlload import LineDict, YamlError, load_yaml_file
from automation.segments.compile import compile_rule
from automation.segments.nodes import InSegment as InSegmentCond
from automation.segments.nodes import RuleError, SegmentDef, walk
from automation.segments.rules import load_rule, parse_segment
from automation.segments.store import (
    apply_segments,
    definition_hash,
    dependency_order,
    validate_definitions,
)
from automation.sequences.schema import (
    IfStep,
    SegmentCondition,
    SegmentTrigger,
    SendStep,
    SequenceDefinition,
    parse_sequence,
)
from automation.sequences.store import apply_definition, plan_definition

Kind = Literal["segment", "sequence"]
Action = Literal["created", "changed", "unchanged"]
YAML_SUFFIXES = (".yaml", ".yml")


class ApplyError(ValueError):
    """Input that cannot be applied; ``problems`` lists every one (file:line: problem. Fix)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"{count}, nothing applied:\n" + "\n".join(problems))


@dataclass
class Document:
    """One loaded YAML file and its validated definition."""

    kind: Kind
    key: str
    file: str
    segment: SegmentDef | None = None
    sequence: SequenceDefinition | None = None


@dataclass
class PlanItem:
    """What apply does to one object."""

    kind: Kind
    key: str
    file: str
    action: Action
    version: int | None = None  # sequences: the version that will be current
    members: int | None = None  # segments: contacts matching now
    templates: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "kind": self.kind,
            "key": self.key,
            "file": self.file,
            "action": self.action,
            "version": self.version,
            "members": self.members,
            "templates": self.templates,
        }


@dataclass
class Plan:
    """The whole plan, in the order things are written (segments first)."""

    items: list[PlanItem]
    applied: bool = False
    at: datetime | None = None
    warnings: list[str] = field(default_factory=list)  # not errors: applied anyway

    def counts(self) -> dict[str, int]:
        """How many objects are created, changed and unchanged."""
        result = {"created": 0, "changed": 0, "unchanged": 0}
        for item in self.items:
            result[item.action] += 1
        return result

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "applied": self.applied,
            "at": self.at.isoformat() if self.at else None,
            "summary": self.counts(),
            "items": [item.to_dict() for item in self.items],
            "warnings": self.warnings,
        }


# --------------------------------------------------------------------------- loading


def collect_files(paths: Iterable[str | Path]) -> list[Path]:
    """The YAML files named by ``paths`` (folders searched recursively), sorted, no repeats."""
    found: list[Path] = []
    problems: list[str] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(
                sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in YAML_SUFFIXES)
            )
        elif path.is_file():
            found.append(path)
        else:
            problems.append(f"{path}: no such file or folder (give a YAML file or a folder)")
    if problems:
        raise ApplyError(problems)
    unique: dict[Path, None] = {}
    for path in found:
        unique.setdefault(path.resolve(), None)
    return [Path(p) for p in unique]


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def load_document(path: Path) -> Document:
    """Read one file, detect its kind and validate it (RuleError / SequenceError / YamlError)."""
    name = _display(path)
    data = load_yaml_file(path)
    data_line = data.line if isinstance(data, LineDict) else 1
    if isinstance(data, dict) and "segment" in data and "sequence" not in data:
        segment = parse_segment(data, name)
        return Document("segment", segment.key, name, segment=segment)
    if isinstance(data, dict) and "sequence" in data and "segment" not in data:
        sequence = parse_sequence(data, name)
        return Document("sequence", sequence.key, name, sequence=sequence)
    raise YamlError(
        name,
        data_line,
        "not a segment or a sequence",
        "start the file with `segment: <key>` or `sequence: <key>`",
    )


def load_documents(paths: Iterable[str | Path]) -> list[Document]:
    """Load and validate every file; ApplyError lists every problem in every file."""
    docs: list[Document] = []
    problems: list[str] = []
    for path in collect_files(paths):
        try:
            docs.append(load_document(path))
        except DefinitionError as exc:
            problems.append(str(exc))
    seen: dict[tuple[str, str], str] = {}
    for doc in docs:
        first = seen.setdefault((doc.kind, doc.key), doc.file)
        if first != doc.file:
            problems.append(
                f"{doc.file}: {doc.kind} {doc.key!r} is also defined in {first} "
                "(keep one file per key)"
            )
    if problems:
        raise ApplyError(problems)
    return docs


# --------------------------------------------------------------------------- checks


def _rule_segment_refs(rule: Any) -> list[str]:
    return [node.key for node in walk(rule) if isinstance(node, InSegmentCond)]


def _sequence_segment_refs(definition: SequenceDefinition) -> list[tuple[str, str]]:
    """(segment key, what refers to it) for trigger, audience and `if` rules."""
    refs: list[tuple[str, str]] = []
    if isinstance(definition.trigger, SegmentTrigger):
        refs.append((definition.trigger.segment, "trigger"))
    if definition.audience:
        refs.append((definition.audience, "audience"))
    for position, step in definition.all_steps():
        if isinstance(step, IfStep) and isinstance(step.condition, SegmentCondition):
            rule = load_rule(step.condition.rule_data, where=step.condition.where)
            refs.extend((key, f"if at step {position}") for key in _rule_segment_refs(rule))
    return refs


def send_steps(definition: SequenceDefinition) -> list[tuple[str, SendStep]]:
    """Every (cursor, send step) of a definition, branches included."""
    return [(pos, step) for pos, step in definition.all_steps() if isinstance(step, SendStep)]


def template_problems(definition: SequenceDefinition, file: str) -> list[str]:
    """Problems with the templates a sequence sends, on every channel it may use."""
    from automation.messages.errors import TemplateProblem
    from automation.messages.lookup import load_template
    from automation.messages.validate import validate_template

    problems: list[str] = []
    checked: set[str] = set()
    for position, step in send_steps(definition):
        where = f"{file}:{step.line}" if step.line else file
        try:
            data = load_template(step.template)
        except TemplateProblem as exc:
            problems.append(f"{where}: step {position}: {exc}")
            continue
        for channel in (step.channel, *step.fallback):
            if channel not in data:
                problems.append(
                    f"{where}: step {position}: template {step.template!r} has no {channel!r} "
                    f"section. Fix: add `{channel}:` to the template or drop the channel"
                )
        if step.template in checked:
            continue
        checked.add(step.template)
        found = validate_template(step.template, purpose=definition.purpose)
        problems.extend(f"{where}: {problem}" for problem in found)
    return problems


def pooling_warnings(docs: list[Document]) -> list[str]:
    """Marketing SMS templates that personalise their text while the SMS provider pools.

    A pooled advertising SMS is one text for every phone (automation.delivery.pools), so
    such a template can never pool: each row would wait its window and fall back.
    """
    from automation.core.config import get_settings
    from automation.delivery.providers import sender_for
    from automation.messages.compliance import personal_variables
    from automation.messages.errors import TemplateProblem
    from automation.messages.lookup import load_template

    sender = sender_for("sms", get_settings())
    if sender.pooling is None:
        return []
    warnings: list[str] = []
    for doc in docs:
        if doc.sequence is None or doc.sequence.purpose != MARKETING:
            continue
        for position, step in send_steps(doc.sequence):
            if "sms" not in (step.channel, *step.fallback):
                continue
            try:
                data = load_template(step.template)
            except TemplateProblem:
                continue  # reported as a problem by check_documents
            sections = [data.get("sms")] + [
                loc.get("sms")
                for loc in (data.get("locales") or {}).values()
                if isinstance(loc, dict)
            ]
            names = personal_variables(sections)
            if names:
                where = f"{doc.file}:{step.line}" if step.line else doc.file
                warnings.append(
                    f"{where}: step {position}: marketing SMS template {step.template!r} uses "
                    f"{', '.join(sorted(names))}: with SMS_PROVIDER={sender.provider} advertising "
                    "SMS go out pooled (one text for every phone), so it can never pool. "
                    "Fix: write one text for everyone (shop variables only)"
                )
    return warnings


def check_documents(session: Session, docs: list[Document]) -> None:
    """Cross-file checks: referenced segments exist, templates render. Raises ApplyError."""
    problems: list[str] = []
    try:
        validate_definitions(session, [doc.segment for doc in docs if doc.segment is not None])
    except RuleError as exc:
        problems.append(f"{exc}. Fix: apply the referenced segment too, or correct the key")
    known = {doc.key for doc in docs if doc.kind == "segment"}
    known.update(session.scalars(select(Segment.key)))
    for doc in docs:
        if doc.sequence is not None:
            try:
                refs = _sequence_segment_refs(doc.sequence)
            except RuleError as exc:
                problems.append(str(exc))
                refs = []
            for key, what in refs:
                if key not in known:
                    problems.append(
                        f"{doc.file}: sequence {doc.key!r} {what} uses unknown segment {key!r}. "
                        f"Fix: apply playbooks/segments/{key}.yaml too, or correct the key"
                    )
            problems.extend(template_problems(doc.sequence, doc.file))
    if problems:
        raise ApplyError(problems)


# --------------------------------------------------------------------------- plan + write


def count_members(session: Session, segment: SegmentDef, at: datetime) -> int:
    """How many contacts match the rule now (whole-base SQL evaluation)."""
    query = compile_rule(segment.rule, at).subquery()
    return int(session.scalar(select(func.count()).select_from(query)) or 0)


def _segment_action(session: Session, segment: SegmentDef) -> Action:
    row = session.scalar(select(Segment).where(Segment.key == segment.key))
    if row is None:
        return "created"
    return "unchanged" if row.definition_hash == definition_hash(segment) else "changed"


def _next_version(session: Session, definition: SequenceDefinition, action: Action) -> int:
    from automation.core.models import Sequence, SequenceVersion

    row = session.scalar(select(Sequence).where(Sequence.key == definition.key))
    if row is None:
        return 1
    top = session.scalar(
        select(func.max(SequenceVersion.version)).where(SequenceVersion.sequence_id == row.id)
    )
    if action == "unchanged" and row.current_version_id is not None:
        current = session.get(SequenceVersion, row.current_version_id)
        if current is not None:
            return current.version
    return int(top or 0) + 1


def make_plan(session: Session, docs: list[Document], at: datetime) -> Plan:
    """created / changed / unchanged per object, members per segment; writes nothing."""
    items: list[PlanItem] = []
    for doc in sorted(docs, key=lambda d: (d.kind != "segment", d.key)):
        if doc.segment is not None:
            items.append(
                PlanItem(
                    "segment",
                    doc.key,
                    doc.file,
                    _segment_action(session, doc.segment),
                    members=count_members(session, doc.segment, at),
                )
            )
        elif doc.sequence is not None:
            action = plan_definition(session, doc.sequence)
            items.append(
                PlanItem(
                    "sequence",
                    doc.key,
                    doc.file,
                    action,
                    version=_next_version(session, doc.sequence, action),
                    templates=sorted({s.template for _, s in send_steps(doc.sequence)}),
                )
            )
    return Plan(items, applied=False, at=at)


def _refresh(session: Session, rows: list[Segment], at: datetime) -> None:
    """Recompute memberships of created/changed segments (segment.entered/exited events)."""
    from automation.segments.membership import refresh_segment

    for row in dependency_order(rows):
        refresh_segment(session, row, at)


def write(session: Session, docs: list[Document], at: datetime, refresh: bool = True) -> None:
    """Write every document (segments first, then sequences); flushes, the caller commits."""
    defs = [doc.segment for doc in docs if doc.segment is not None]
    results = apply_segments(session, defs)
    for doc in docs:
        if doc.sequence is not None:
            apply_definition(session, doc.sequence)
    if refresh:
        _refresh(session, [row for status, row in results if status != "unchanged"], at)
    session.flush()


def apply_paths(
    session: Session,
    paths: Iterable[str | Path],
    *,
    dry_run: bool = False,
    at: datetime | None = None,
    refresh: bool = True,
) -> Plan:
    """Load, validate everything, plan, and (unless ``dry_run``) write and commit once.

    Raises ApplyError listing every problem; then nothing is written.
    """
    at = at or clock_now()
    docs = load_documents(paths)
    check_documents(session, docs)
    plan = make_plan(session, docs, at)
    plan.warnings = pooling_warnings(docs)
    if dry_run:
        session.rollback()
        return plan
    try:
        write(session, docs, at, refresh=refresh)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    plan.applied = True
    return plan
