"""`mactl segments|sequences|enrollments` on the applied playbooks (both backends)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

from sqlalchemy.orm import Session
from typer.testing import CliRunner

from admin_cli.main import app
from automation.apply import apply_paths
from automation.core import clock
from automation.core.models import Contact

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
runner = CliRunner()


def _json(args: list[str]) -> object:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_segments_sequences_enrollments(session: Session, frozen_clock: clock.FrozenClock) -> None:
    lan = Contact(
        email="lan@example.com", phone="+84912345678", first_name="Lan", last_name="Nguyễn Thị",
        orders_count=2, total_spent=900_000, attributes={}, tags=[], last_inbound_at={},
        last_order_at=frozen_clock.now() - timedelta(days=120),
    )  # fmt: skip
    session.add(lan)
    session.commit()
    apply_paths(session, [PLAYBOOKS])

    segments = {s["key"]: s for s in _json(["segments", "list", "--json"])}  # type: ignore[union-attr]
    assert segments["lapsed_90d"]["members"] == 1 and segments["vip"]["members"] == 0

    preview = _json(["segments", "preview", "lapsed_90d", "--json"])
    assert isinstance(preview, dict) and preview["count"] == 1
    assert preview["sample"][0]["email"] == "lan@example.com"

    why = _json(["segments", "explain", "lapsed_90d", "--contact", "0912 345 678", "--json"])
    assert isinstance(why, dict) and why["matches"] is True and why["member"] is True
    rules = {c["rule"]: c for c in why["tree"]["children"]}
    assert rules["orders_count gte 1"]["value"] == 2
    assert rules["last_order_at more than ago 90d"]["result"] is True
    not_vip = _json(["segments", "explain", "vip", "--contact", "lan@example.com", "--json"])
    assert isinstance(not_vip, dict) and not_vip["matches"] is False

    table = runner.invoke(app, ["segments", "explain", "lapsed_90d", "--contact", str(lan.id)])
    assert table.exit_code == 0 and "IS in lapsed_90d" in table.stdout

    sequences = {s["key"]: s for s in _json(["sequences", "list", "--json"])}  # type: ignore[union-attr]
    assert set(sequences) == {"lead_capture", "nurture", "cart_recovery", "order_status", "winback"}
    assert sequences["order_status"]["purpose"] == "transactional"
    paused = _json(["sequences", "pause", "winback", "--json"])
    assert paused == {"key": "winback", "status": "paused"}
    shown = _json(["sequences", "show", "winback", "--json"])
    assert isinstance(shown, dict) and shown["status"] == "paused"
    assert shown["versions"][0]["version"] == 1 and shown["definition"]["reentry"] == "after 180d"
    assert _json(["sequences", "resume", "winback", "--json"]) == {"key": "winback",
                                                                   "status": "active"}  # fmt: skip

    assert isinstance(_json(["enrollments", "list", "--json"]), list)
    for args, needle in (
        (["enrollments", "list", "--state", "bogus"], "--state"),
        (["enrollments", "list", "--sequence", "nope"], "unknown sequence"),
        (["segments", "explain", "vip", "--contact", "nobody@example.com"], "no contact"),
        (["segments", "preview", "nope"], "unknown segment"),
        (["sequences", "pause", "nope"], "unknown sequence"),
    ):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.stderr and "Traceback" not in result.output
