# ruff: noqa: F811  (the person fixture is imported from tests/privacy/conftest.py)
"""`mactl contacts export|forget`, `mactl audit list` and what the audit log records."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from admin_cli.main import app
from automation.core.config import Settings
from automation.core.models import Contact, Message
from tests.privacy.conftest import EMAIL, PHONE, person  # noqa: F401

runner = CliRunner()


def _audit() -> list[dict[str, object]]:
    result = runner.invoke(app, ["audit", "list", "--json"])
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout))


@pytest.fixture(autouse=True)
def actor(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("MACTL_ACTOR", "thu.nguyen")
    return "thu.nguyen"


def test_export_writes_everything_to_a_private_file_and_is_audited(
    settings: Settings,
    session: Session,
    person: dict[str, int],
    tmp_path: Path,
) -> None:
    out = tmp_path / "lan.json"
    result = runner.invoke(app, ["contacts", "export", PHONE, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    data = json.loads(out.read_text(encoding="utf-8"))
    assert data["contact"]["email"] == EMAIL
    assert [i["external_id"] for i in data["identities"]] == ["cust-42"]
    assert data["consents"][0]["source"] == "form:dang-ky"
    assert data["messages"][0]["rendered"]["subject"] == "[QC] Chào Lan"
    assert data["events"][0]["payload"]["properties"]["total"] == 1_250_000
    assert [o["external_id"] for o in data["orders"]] == ["o-1"]
    assert [c["external_id"] for c in data["carts"]] == ["c-1"]
    assert [s["reason"] for s in data["suppressions"]] == ["unsubscribed"]
    assert data["reachability"]["email"] == {
        "reachable": True,
        "has_address": True,
        "suppressed": False,
    }
    assert data["reachability"]["sms"]["suppressed"] is True
    assert [e["sequence"] for e in data["enrollments"]] == ["cart_recovery"]
    assert [m["segment"] for m in data["memberships"]] == ["vip"]
    assert data["message_events"][0]["payload"]["recipient"] == EMAIL
    assert data["attributes"] == {"tinh": "Hà Nội"}
    [entry] = _audit()
    assert (entry["actor"], entry["action"], entry["target"]) == (
        "thu.nguyen",
        "export",
        f"contact:{person['contact']}",
    )
    assert PHONE not in json.dumps(entry) and EMAIL not in json.dumps(entry)


def test_forget_asks_first_then_erases_and_is_audited(
    settings: Settings,
    session: Session,
    person: dict[str, int],
) -> None:
    refused = runner.invoke(app, ["contacts", "forget", EMAIL], input="n\n")
    assert refused.exit_code == 2 and "nothing erased" in refused.stderr
    session.expire_all()
    assert session.get_one(Contact, person["contact"]).email == EMAIL
    done = runner.invoke(app, ["contacts", "forget", EMAIL, "--yes", "--json"])
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout)
    assert summary["contact_id"] == person["contact"] and summary["counts"]["messages"] == 1
    session.expire_all()
    assert session.get_one(Contact, person["contact"]).email is None
    assert session.get_one(Message, person["message"]).rendered == {}
    [entry] = _audit()
    assert (entry["action"], entry["target"]) == ("forget", f"contact:{person['contact']}")
    assert EMAIL not in json.dumps(entry)
    again = runner.invoke(app, ["contacts", "forget", EMAIL, "--yes"])
    assert again.exit_code == 2 and "no contact matches" in again.stderr


def test_a_bad_reference_is_one_line(settings: Settings) -> None:
    result = runner.invoke(app, ["contacts", "export", "²"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "CONTACT" in result.stderr


def test_export_to_a_missing_folder_is_one_line_and_not_audited(
    settings: Settings, session: Session, person: dict[str, int], tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-folder" / "lan.json"
    result = runner.invoke(app, ["contacts", "export", EMAIL, "--out", str(missing)])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "no-such-folder" in result.stderr
    assert _audit() == []  # nothing stored half-way: no entry for an export that failed
    to_stdout = runner.invoke(app, ["contacts", "export", f"id:{person['contact']}"])
    assert to_stdout.exit_code == 0 and json.loads(to_stdout.stdout)["contact"]["email"] == EMAIL
    assert [e["details"]["out"] for e in _audit()] == ["stdout"]


def test_apply_and_dlq_replay_are_audited(
    settings: Settings,
    session: Session,
    person: dict[str, int],
    tmp_path: Path,
) -> None:
    segment = tmp_path / "vip.yaml"
    segment.write_text(
        "segment: big_spenders\nname: Khách chi nhiều\nrule: {field: total_spent, gte: 1000000}\n",
        encoding="utf-8",
    )
    dry = runner.invoke(app, ["apply", str(segment), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert _audit() == []  # a dry run writes nothing, so there is nothing to audit
    applied = runner.invoke(app, ["apply", str(segment)])
    assert applied.exit_code == 0, applied.output
    failed = session.get_one(Message, person["message"])
    failed.status = "failed"
    session.commit()
    replay = runner.invoke(app, ["dlq", "replay", str(failed.id)])
    assert replay.exit_code == 0, replay.output
    replayed, apply = _audit()
    assert (replayed["action"], replayed["details"]) == (
        "dlq.replay",
        {"all": False, "ids": [failed.id], "replayed": [failed.id]},
    )
    assert apply["action"] == "apply" and apply["actor"] == "thu.nguyen"
    assert apply["details"] == {
        "paths": [str(segment)],
        "counts": {"created": 1, "changed": 0, "unchanged": 0},
    }
    table = runner.invoke(app, ["audit", "list", "--action", "apply"])
    assert table.exit_code == 0 and "audit log (1)" in table.stdout and "thu.nguyen" in table.stdout
