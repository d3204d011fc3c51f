"""Sequence YAML parsing and validation: typed definitions, file:line errors with a fix."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from automation.dsl.durations import DurationError, format_duration, parse_duration
from automation.sequences.schema import (
    EngagementCondition,
    EventTrigger,
    IfStep,
    SegmentTrigger,
    SendStep,
    SequenceError,
    SplitStep,
    WaitStep,
    WaitUntilStep,
    parse_sequence,
    parse_sequence_file,
    parse_sequence_text,
)

CART_RECOVERY = """\
sequence: cart_recovery
purpose: marketing              # or transactional
trigger: {event: cart.abandoned}
audience: reachable             # optional segment the contact must be in at entry
reentry: after 7d               # never | always | after <duration>
exit_on: [{event: order.created, as: converted}]
steps:
  - wait: 1h
  - send: {channel: zalo_zns, template: cart_recovery/reminder, fallback: [sms, email]}
  - wait: 23h
  - if: {clicked: previous}
    then: [{exit: engaged}]
  - send: {channel: email, template: cart_recovery/last_call}
"""


def test_issue_example_parses_to_typed_steps() -> None:
    d = parse_sequence_text(CART_RECOVERY, "cart_recovery.yaml")
    assert d.key == "cart_recovery" and d.purpose == "marketing"
    assert d.trigger == EventTrigger("cart.abandoned")
    assert d.audience == "reachable"
    assert d.reentry.mode == "after" and d.reentry.after == timedelta(days=7)
    assert [(c.event, c.reason) for c in d.exit_on] == [("order.created", "converted")]
    assert isinstance(d.steps[0], WaitStep) and d.steps[0].duration == timedelta(hours=1)
    send = d.steps[1]
    assert isinstance(send, SendStep)
    assert (send.channel, send.template, send.fallback) == (
        "zalo_zns",
        "cart_recovery/reminder",
        ("sms", "email"),
    )
    branch = d.steps[3]
    assert isinstance(branch, IfStep)
    assert branch.condition == EngagementCondition("clicked", "previous")
    assert d.resolve("3.then.0") is not None
    assert d.resolve("3.then.1") == ("4", d.steps[4])  # past the branch -> after the if
    assert d.resolve("5") is None


def test_hash_changes_with_definition_only() -> None:
    a = parse_sequence_text(CART_RECOVERY, "a.yaml")
    b = parse_sequence_text(CART_RECOVERY.replace("# or transactional", ""), "b.yaml")
    c = parse_sequence_text(CART_RECOVERY.replace("wait: 23h", "wait: 22h"), "c.yaml")
    assert a.definition_hash == b.definition_hash  # comments do not matter
    assert a.definition_hash != c.definition_hash
    # a stored (plain) definition parses back to the same thing
    assert parse_sequence(a.raw, "stored").definition_hash == a.definition_hash


def test_all_step_kinds_and_triggers() -> None:
    d = parse_sequence_text(
        """\
        sequence: big_buyers
        trigger: {event: order.created, where: [{property: total, gte: 1000000}]}
        reentry: always
        steps:
          - id: hello
            send: {channel: email, template: vip/hello}
          - wait_until: {event: message.clicked, timeout: 3d}
            on_event: [{update: {add_tags: [clicker]}}]
            on_timeout: [{exit: no_click}]
          - if: {opened: hello}
            then: [{update: {set: {tier: gold}, remove_tag: lead}}]
            else: []
          - split:
              - {percent: 30, name: short, steps: [{send: {channel: sms, template: vip/short}}]}
              - {percent: 70, steps: [{wait: 2w}]}
        """.replace("        ", ""),
        "big.yaml",
    )
    assert isinstance(d.trigger, EventTrigger)
    assert d.trigger.where[0].matches({"total": 1_500_000})
    assert not d.trigger.where[0].matches({"total": 900_000})
    assert d.reentry.mode == "always"
    assert d.step_ids == {"hello": "0"}
    assert isinstance(d.steps[1], WaitUntilStep) and d.steps[1].timeout == timedelta(days=3)
    split = d.steps[3]
    assert isinstance(split, SplitStep)
    assert [(b.name, b.percent) for b in split.branches] == [("short", 30), ("b", 70)]
    cursors = [c for c, _ in d.all_steps()]
    assert "1.on_event.0" in cursors and "3.short.0" in cursors and "3.b.0" in cursors
    seg = parse_sequence_text("sequence: s\ntrigger: {segment: vip}\nsteps: [{exit: x}]\n")
    assert seg.trigger == SegmentTrigger("vip")


@pytest.mark.parametrize(
    ("snippet", "line", "needle"),
    [
        ("  - wait: 90\n", 5, 'did you mean "90m"'),
        ("  - wait: 1y\n", 5, "unit"),
        ("  - send: {channel: zalo, template: a/b}\n", 5, "unknown channel 'zalo'"),
        ("  - send: {channel: email}\n", 5, "send needs channel: and template:"),
        ("  - sned: {channel: email, template: a/b}\n", 5, 'did you mean "send"'),
        ("  - if: {clicked: previous}\n    then: [{exit: x}]\n", 5, "needs a send step before"),
        ("  - if: {opened: nope}\n    then: [{exit: x}]\n", 5, "no send step with id 'nope'"),
        ("  - split: [{percent: 50}, {percent: 40}]\n", 5, "add up to 90"),
        ("  - wait_until: {event: order.created}\n", 5, "needs event: and timeout:"),
        ("  - wait: 1h\n    then: []\n", 6, "unknown key 'then'"),
    ],
)
def test_step_errors_name_file_line_and_fix(snippet: str, line: int, needle: str) -> None:
    text = "sequence: s\ntrigger: {event: lead.captured}\nreentry: never\nsteps:\n" + snippet
    with pytest.raises(SequenceError) as info:
        parse_sequence_text(text, "playbooks/s.yaml")
    assert info.value.file == "playbooks/s.yaml"
    assert info.value.line == line, str(info.value)
    assert str(info.value).startswith(f"playbooks/s.yaml:{line}: ")
    assert needle in str(info.value)
    assert "Fix:" in str(info.value)


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        (
            "sequence: s\ntrigger: {event: order.create}\nsteps: [{exit: x}]\n",
            2,
            'did you mean "order.created"',
        ),
        (
            "sequence: s\ntrigger: {event: lead.captured}\nreentry: sometimes\n"
            "steps: [{exit: x}]\n",
            3,
            "never, always",
        ),
        (
            "sequence: s\ntrigger: {event: lead.captured}\nreentry: after soon\n"
            "steps: [{exit: x}]\n",
            3,
            "cannot read duration",
        ),
        (
            "sequence: s\ntrigger: {event: lead.captured}\npurpose: promo\nsteps: [{exit: x}]\n",
            3,
            "purpose",
        ),
        ("sequence: s\ntrigger: {event: lead.captured}\nstep: []\n", 3, 'did you mean "steps"'),
        ("sequence: s\ntrigger: {event: lead.captured}\n", 1, "missing steps:"),
        (
            "sequence: s\ntrigger: {event: lead.captured}\nsteps:\n  - wait: 1h\n   - wait: 2h\n",
            5,
            "invalid YAML",
        ),
        ("sequence: s\nsequence: t\n", 2, "duplicate key"),
        (
            "sequence: s\ntrigger: {event: order.created, where: [{property: total, gte: lots}]}\n"
            "steps: [{exit: x}]\n",
            2,
            "gte needs a number",
        ),
        (
            "sequence: s\ntrigger: {event: lead.captured}\n"
            "exit_on: [{event: order.created, as: converted, when: now}]\nsteps: [{exit: x}]\n",
            3,
            "unknown key 'when'",
        ),
    ],
)
def test_top_level_errors(text: str, line: int, needle: str) -> None:
    with pytest.raises(SequenceError) as info:
        parse_sequence_text(text, "x.yaml")
    assert info.value.line == line, str(info.value)
    assert needle in str(info.value)


def test_parse_file_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "cart.yaml"
    path.write_text(CART_RECOVERY, encoding="utf-8")
    assert parse_sequence_file(path).key == "cart_recovery"
    with pytest.raises(SequenceError, match="cannot read file"):
        parse_sequence_file(tmp_path / "nope.yaml")


def test_durations() -> None:
    assert parse_duration("1h") == timedelta(hours=1)
    assert parse_duration("23h") == timedelta(hours=23)
    assert parse_duration("7d") == timedelta(days=7)
    assert parse_duration("90m") == timedelta(minutes=90)
    assert parse_duration("2w") == timedelta(weeks=2)
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert format_duration(timedelta(minutes=90)) == "1h30m"
    for bad in ("", "h", "1 hour", "0h", "-1h", "1.5h", None, True):
        with pytest.raises(DurationError, match="e.g."):
            parse_duration(bad)
    with pytest.raises(DurationError, match='did you mean "5m"'):
        parse_duration(5)


def test_dedented_example_helper_is_valid() -> None:
    assert textwrap.dedent(CART_RECOVERY) == CART_RECOVERY


def test_if_rule_errors_come_from_the_rule_language() -> None:
    text = (
        "sequence: s\ntrigger: {event: lead.captured}\nsteps:\n"
        "  - send: {channel: email, template: a/b}\n"
        "  - if: {feild: attributes.city, eq: x}\n    then: [{exit: x}]\n"
    )
    with pytest.raises(SequenceError) as info:
        parse_sequence_text(text, "s.yaml")
    assert info.value.line == 5 and "invalid if rule" in str(info.value)
    ok = parse_sequence_text(text.replace("feild", "field"), "s.yaml")
    step = ok.steps[1]
    assert isinstance(step, IfStep) and not isinstance(step.condition, EngagementCondition)
    # {clicked: email} is the rule language's engagement condition, not a step reference
    rule = parse_sequence_text(text.replace("{feild: attributes.city, eq: x}", "{clicked: email}"))
    rule_step = rule.steps[1]
    assert isinstance(rule_step, IfStep)
    assert not isinstance(rule_step.condition, EngagementCondition)
