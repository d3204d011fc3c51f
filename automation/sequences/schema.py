"""Sequence definitions: parse YAML into the step model with file:line errors.

The model lives in ``sequences.steps``, the helpers in ``sequences.parse_common`` and
the per-step parsers in ``sequences.parse_steps``; this module reads a whole file and
keeps the public names importable from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from automation.analytics.definition import KEYS as ANALYTICS_KEYS
from automation.analytics.definition import parse_analytics
from automation.dsl.filters import PropertyFilter, filters_match
from automation.dsl.yamlload import LineDict, YamlError, load_yaml_file, load_yaml_text, plain
from automation.sequences.parse_common import (
    KEY_RE,
    Ctx,
    check_keys,
    line_at,
    need_mapping,
    need_text,
    parse_exit_on,
    parse_filters,
    parse_reentry,
    parse_trigger,
    suggest,
)
from automation.sequences.parse_steps import check_rule, parse_step_list
from automation.sequences.steps import (
    CHANNELS,
    ENGAGEMENT,
    PURPOSES,
    RULE_CHANNELS,
    Condition,
    EngagementCondition,
    EventTrigger,
    ExitCondition,
    ExitStep,
    IfStep,
    Reentry,
    SegmentCondition,
    SegmentTrigger,
    SendStep,
    SequenceDefinition,
    SequenceError,
    SplitBranch,
    SplitStep,
    Step,
    Trigger,
    UpdateStep,
    WaitStep,
    WaitUntilStep,
    branches,
    child_steps,
    correlated,
    definition_hash,
)

__all__ = [
    "CHANNELS", "ENGAGEMENT", "PURPOSES", "RULE_CHANNELS", "Condition", "EngagementCondition",
    "EventTrigger", "ExitCondition", "ExitStep", "IfStep", "PropertyFilter", "Reentry",
    "SegmentCondition", "SegmentTrigger", "SendStep", "SequenceDefinition", "SequenceError",
    "SplitBranch", "SplitStep", "Step", "Trigger", "UpdateStep", "WaitStep", "WaitUntilStep",
    "branches", "check_rule", "child_steps", "correlated", "definition_hash", "filters_match",
    "parse_sequence", "parse_sequence_file", "parse_sequence_text",
]  # fmt: skip

TOP_KEYS = (
    "sequence",
    "name",
    "description",
    "purpose",
    "trigger",
    "audience",
    "reentry",
    "exit_on",
    "steps",
    *ANALYTICS_KEYS,
)


def parse_sequence(data: Any, file: str = "<definition>") -> SequenceDefinition:
    """Validate loaded YAML (or stored plain data) and build a SequenceDefinition.

    Raises SequenceError naming file, line and the fix for the first problem found.
    """
    ctx = Ctx(file)
    top = need_mapping(
        ctx,
        data,
        line_at(data, 0),
        "a sequence file",
        "start with sequence: <key>, trigger:, steps:",
    )
    check_keys(ctx, top, TOP_KEYS, "the sequence")
    for required in ("sequence", "trigger", "steps"):
        if required not in top:
            raise ctx.error(
                top.line if isinstance(top, LineDict) else 0,
                f"missing {required}:",
                f"add {required}: (see the sequence reference)",
            )
    key = need_text(
        ctx, top["sequence"], line_at(top, "sequence"), "sequence", "write sequence: my_key"
    )
    if not KEY_RE.match(key):
        raise ctx.error(
            line_at(top, "sequence"),
            f"sequence key {key!r} is not a simple name",
            "use lower-case letters, digits, _ and -, e.g. cart_recovery",
        )
    purpose = top.get("purpose", "marketing")
    if purpose not in PURPOSES:
        raise ctx.error(
            line_at(top, "purpose"),
            f"purpose {purpose!r} is not known",
            suggest(str(purpose), PURPOSES),
        )
    audience = None
    if top.get("audience") is not None:
        audience = need_text(
            ctx,
            top["audience"],
            line_at(top, "audience"),
            "audience",
            "write audience: <segment key>",
        )
    trigger = parse_trigger(ctx, top["trigger"], line_at(top, "trigger"))
    reentry = parse_reentry(ctx, top.get("reentry"), line_at(top, "reentry"))
    exit_on = parse_exit_on(ctx, top.get("exit_on"), line_at(top, "exit_on"))
    steps = parse_step_list(ctx, top["steps"], line_at(top, "steps"), "", "steps", False)
    for target, ref_line in ctx.pending_refs:
        found = ctx.ids.get(target)
        if found is None or not isinstance(found[1], SendStep):
            sends = [k for k, v in ctx.ids.items() if isinstance(v[1], SendStep)]
            raise ctx.error(
                ref_line,
                f"no send step with id {target!r}",
                f"use previous or a send step id ({', '.join(sends) or 'none defined'})",
            )
    name = top.get("name")
    description = top.get("description")
    return SequenceDefinition(
        key=key,
        trigger=trigger,
        steps=steps,
        purpose=str(purpose),
        audience=audience,
        reentry=reentry,
        exit_on=exit_on,
        name=str(name) if name is not None else None,
        description=str(description) if description is not None else None,
        raw=plain(top),
        file=file,
        step_ids={k: v[0] for k, v in ctx.ids.items()},
        analytics=parse_analytics(
            top, str(purpose), ctx.error, lambda v, n: parse_filters(ctx, v, n)
        ),
    )


def parse_sequence_text(text: str, file: str = "<string>") -> SequenceDefinition:
    """Parse and validate sequence YAML text."""
    try:
        data = load_yaml_text(text, file)
    except YamlError as exc:
        raise SequenceError(exc.file, exc.line, exc.message, exc.fix) from None
    return parse_sequence(data, file)


def parse_sequence_file(path: str | Path) -> SequenceDefinition:
    """Parse and validate one sequence YAML file."""
    try:
        data = load_yaml_file(path)
    except YamlError as exc:
        raise SequenceError(exc.file, exc.line, exc.message, exc.fix) from None
    return parse_sequence(data, str(path))
