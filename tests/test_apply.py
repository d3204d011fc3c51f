"""`mactl apply`: validate all first, plan (created/changed/unchanged, members), write once."""

from __future__ import annotations

import json
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from admin_cli.main import app
from automation.apply import ApplyError, apply_paths
from automation.core import clock
from automation.core.config import Settings, get_settings
from automation.core.models import Contact, Segment, SegmentMembership, Sequence, SequenceVersion

PLAYBOOKS = Path(__file__).resolve().parent.parent / "playbooks"
SHIPPED_SEGMENTS = {"reachable", "engaged_30d", "vip", "lapsed_90d", "leads_not_buying_3d"}
SHIPPED_SEQUENCES = {"lead_capture", "nurture", "cart_recovery", "order_status", "winback"}
runner = CliRunner()


def _copy_playbooks(tmp_path: Path) -> Path:
    target = tmp_path / "playbooks"
    shutil.copytree(PLAYBOOKS, target)
    return target


def test_apply_shipped_playbooks_then_unchanged(
    session: Session, frozen_clock: clock.FrozenClock
) -> None:
    at = frozen_clock.now()
    lapsed = Contact(
        email="lan@example.com", first_name="Lan", last_name="Nguyễn Thị", orders_count=2,
        total_spent=1_500_000, last_order_at=at - timedelta(days=120), attributes={}, tags=[],
        last_inbound_at={},
    )  # fmt: skip
    fresh = Contact(
        email="an@example.com", first_name="An", orders_count=1, total_spent=300_000,
        last_order_at=at - timedelta(days=3), attributes={}, tags=[], last_inbound_at={},
    )  # fmt: skip
    session.add_all([lapsed, fresh])
    session.commit()

    plan = apply_paths(session, [PLAYBOOKS])
    assert plan.applied
    by_key = {(i.kind, i.key): i for i in plan.items}
    assert {k for kind, k in by_key if kind == "segment"} == SHIPPED_SEGMENTS
    assert {k for kind, k in by_key if kind == "sequence"} == SHIPPED_SEQUENCES
    assert all(i.action == "created" for i in plan.items)
    assert by_key[("segment", "lapsed_90d")].members == 1
    assert by_key[("sequence", "cart_recovery")].version == 1
    assert "cart_recovery/reminder" in by_key[("sequence", "cart_recovery")].templates
    # segments come first in the plan (sequences refer to them)
    kinds = [i.kind for i in plan.items]
    assert kinds == sorted(kinds, key=lambda k: k != "segment")

    assert session.scalar(select(func.count()).select_from(Sequence)) == 5
    assert session.scalar(select(func.count()).select_from(Segment)) == 5
    lapsed_id = session.scalar(select(Segment.id).where(Segment.key == "lapsed_90d"))
    members = session.scalars(
        select(SegmentMembership.contact_id).where(
            SegmentMembership.segment_id == lapsed_id, SegmentMembership.exited_at.is_(None)
        )
    ).all()
    assert members == [lapsed.id]  # memberships populated at apply

    again = apply_paths(session, [PLAYBOOKS])
    assert again.counts() == {"created": 0, "changed": 0, "unchanged": 10}


def test_changed_sequence_gets_a_new_version_and_dry_run_writes_nothing(
    session: Session, tmp_path: Path
) -> None:
    books = _copy_playbooks(tmp_path)
    apply_paths(session, [books])
    path = books / "sequences" / "cart_recovery.yaml"
    path.write_text(path.read_text(encoding="utf-8").replace("wait: 23h", "wait: 20h"), "utf-8")

    dry = apply_paths(session, [books], dry_run=True)
    item = next(i for i in dry.items if i.key == "cart_recovery")
    assert (item.action, item.version, dry.applied) == ("changed", 2, False)
    assert session.scalar(select(func.count()).select_from(SequenceVersion)) == 5

    plan = apply_paths(session, [books])
    assert plan.counts() == {"created": 0, "changed": 1, "unchanged": 9}
    sequence = session.scalars(select(Sequence).where(Sequence.key == "cart_recovery")).one()
    current = session.get(SequenceVersion, sequence.current_version_id)
    assert current is not None and current.version == 2
    assert current.definition["steps"][2] == {"wait": "20h"}


def test_every_problem_is_reported_and_nothing_is_written(
    session: Session, tmp_path: Path
) -> None:
    books = _copy_playbooks(tmp_path)
    (books / "segments" / "vip.yaml").write_text(
        "segment: vip\nname: VIP\nrule:\n  all:\n    - {field: orders_cont, gte: 3}\n", "utf-8"
    )
    seq = books / "sequences" / "winback.yaml"
    seq.write_text(
        seq.read_text(encoding="utf-8")
        .replace("trigger: {segment: lapsed_90d}", "trigger: {segment: lapsed_60d}")
        .replace("template: winback/offer", "template: winback/missing"),
        "utf-8",
    )
    (books / "notes.yaml").write_text("title: not a playbook\n", "utf-8")

    with pytest.raises(ApplyError) as info:
        apply_paths(session, [books])
    text = "\n".join(info.value.problems)
    assert "vip.yaml:5" in text and "orders_cont" in text
    assert "notes.yaml:1" in text and "segment: <key>" in text
    # the sequence errors are reported only once the files parse; fix the rule and retry
    (books / "segments" / "vip.yaml").unlink()
    (books / "notes.yaml").unlink()
    with pytest.raises(ApplyError) as info:
        apply_paths(session, [books])
    text = "\n".join(info.value.problems)
    assert "unknown segment 'lapsed_60d'" in text
    assert "winback/missing" in text and "not found" in text
    assert "winback.yaml" in text
    assert session.scalar(select(func.count()).select_from(Segment)) == 0
    assert session.scalar(select(func.count()).select_from(Sequence)) == 0


def test_template_that_does_not_render_is_rejected(
    session: Session, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    extra = tmp_path / "templates" / "cart_recovery"
    extra.mkdir(parents=True)
    (extra / "reminder.yaml").write_text(
        'zalo_zns:\n  template_id: "1"\n  params: {total: "{{ cart.totl | vnd }}"}\n'
        'sms:\n  text: "{{ cart.total | vnd }}"\nemail:\n  subject: x\n  html: "<p>x</p>"\n',
        "utf-8",
    )
    monkeypatch.setenv("TEMPLATES_DIR", str(tmp_path / "templates"))
    get_settings.cache_clear()
    with pytest.raises(ApplyError) as info:
        apply_paths(session, [PLAYBOOKS])
    text = "\n".join(info.value.problems)
    assert "cart_recovery.yaml" in text and "cart_recovery/reminder" in text and "totl" in text


def test_fallback_channel_without_a_template_section(session: Session, tmp_path: Path) -> None:
    books = _copy_playbooks(tmp_path)
    seq = books / "sequences" / "cart_recovery.yaml"
    seq.write_text(
        seq.read_text(encoding="utf-8").replace(
            "template: cart_recovery/last_call}", "template: cart_recovery/last_call, "
            "fallback: [messenger]}"
        ),
        "utf-8",
    )
    with pytest.raises(ApplyError) as info:
        apply_paths(session, [books])
    assert any("no 'messenger' section" in p for p in info.value.problems)


def test_cli_apply_json_and_errors(settings: Settings, tmp_path: Path) -> None:
    result = runner.invoke(app, ["apply", str(PLAYBOOKS), "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["applied"] is False and data["summary"]["created"] == 10

    table = runner.invoke(app, ["apply", str(PLAYBOOKS)])
    assert table.exit_code == 0, table.output
    assert "Plan" in table.stdout and "winback" in table.stdout and "10 to create" in table.stdout

    missing = runner.invoke(app, ["apply", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert "no such file or folder" in missing.stderr and "Traceback" not in missing.output

    bad = tmp_path / "bad.yaml"
    bad.write_text("sequence: x\ntrigger: {event: order.creatd}\nsteps: [{wait: 1h}]\n", "utf-8")
    wrong = runner.invoke(app, ["apply", str(bad)])
    assert wrong.exit_code == 2
    assert "bad.yaml:2" in wrong.stderr and "order.created" in wrong.stderr
    assert "Traceback" not in wrong.output


@pytest.mark.parametrize(
    ("name", "text", "needle"),
    [
        (
            "long_wait.yaml",
            "sequence: s\ntrigger: {event: lead.captured}\nsteps:\n  - wait: 99999999d\n",
            "long_wait.yaml:4: ",
        ),
        (
            "long_window.yaml",
            "segment: s\nname: S\nrule:\n  performed: order.created\n  within: 99999999d\n",
            "long_window.yaml:5: bad duration '99999999d'",
        ),
        (
            "deep.yaml",
            "segment: s\nname: S\nrule: " + "{not: " * 2000 + "{}" + "}" * 2000 + "\n",
            "deep.yaml:3: refused: nested more than 100 levels",
        ),
        (
            "long_key.yaml",
            f"segment: {'k' * 101}\nname: S\nrule: {{reachable: email}}\n",
            "long_key.yaml:1: segment key is 101 characters long; use at most 100",
        ),
    ],
)
def test_dry_run_refuses_hostile_definitions_in_one_line(
    session: Session, tmp_path: Path, name: str, text: str, needle: str
) -> None:
    """Issue 11: huge durations, deep rules and long keys fail at --dry-run, on one line."""
    (tmp_path / name).write_text(text, "utf-8")
    with pytest.raises(ApplyError) as info:
        apply_paths(session, [tmp_path], dry_run=True)
    [problem] = info.value.problems
    assert needle in problem, problem
    assert "\n" not in problem
    assert session.scalar(select(func.count()).select_from(Segment)) == 0


def test_nested_not_within_the_yaml_limit_hits_the_rule_depth(
    session: Session, tmp_path: Path
) -> None:
    text = "segment: s\nname: S\nrule: " + "{not: " * 40 + "{reachable: email}" + "}" * 40 + "\n"
    (tmp_path / "s.yaml").write_text(text, "utf-8")
    with pytest.raises(ApplyError) as info:
        apply_paths(session, [tmp_path], dry_run=True)
    assert "rule nested too deeply (more than 32 levels)" in info.value.problems[0]
