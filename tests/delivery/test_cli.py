"""mactl doctor, templates, dlq and send-test."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session
from typer.testing import CliRunner

from admin_cli.main import app
from automation.core.config import Settings
from tests.delivery.helpers import Loopback, contact, message

runner = CliRunner()


def test_doctor_json_lists_channels_and_example_zns_ids(dsettings: Settings) -> None:
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    states = {c["channel"]: c for c in report["channels"]}
    assert states["zalo_zns"]["configured"] and states["zalo_zns"]["provider"] == "zalo_zns"
    assert states["messenger"]["provider"] == "file"
    assert "FACEBOOK_PAGE_TOKEN" in states["messenger"]["detail"]
    assert report["database"]["ok"]
    assert any("t/order [vi]" in w and "000002" in w for w in report["warnings"])


def test_templates_validate_and_render(dsettings: Settings) -> None:
    result = runner.invoke(app, ["templates", "validate", "t/promo", "t/order", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"checked": 2, "problems": {}}
    result = runner.invoke(
        app, ["templates", "render", "t/order", "--sample", "--channel", "zalo_zns", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)[0]["params"]["total"] == "1.250.000 ₫"
    bad = runner.invoke(app, ["templates", "render", "t/none", "--sample"])
    assert bad.exit_code == 2 and "not found" in bad.output


def test_dlq_list_and_replay(session: Session, dsettings: Settings) -> None:
    c = contact(session)
    m = message(session, c, "sms", status="failed", error="esms: 108 invalid phone", attempts=3)
    session.commit()
    listed = runner.invoke(app, ["dlq", "list", "--json"])
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output)[0]["reason"] == "esms: 108 invalid phone"
    replayed = runner.invoke(app, ["dlq", "replay", str(m.id), "--json"])
    assert json.loads(replayed.output) == {"replayed": [m.id], "not_failed": [], "refused": {}}
    session.refresh(m)
    assert m.status == "queued" and m.attempts == 0
    assert runner.invoke(app, ["dlq", "replay"]).exit_code == 2


def test_send_test_uses_configured_adapter(dsettings: Settings, zns_server: Loopback) -> None:
    result = runner.invoke(
        app, ["send-test", "t/order", "--to", "0912 345 678", "--channel", "zalo_zns", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["provider"] == "zalo_zns"
    assert zns_server.hits[0].body["phone"] == "84912345678"
