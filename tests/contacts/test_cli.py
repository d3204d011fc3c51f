"""`mactl contacts consent` and the evidence in `mactl contacts show` (real Typer app)."""

from __future__ import annotations

import json

from sqlalchemy.orm import Session
from typer.testing import CliRunner

from admin_cli.main import app
from automation.contacts.consent import history
from automation.contacts.identity import upsert_contact
from automation.core.config import Settings
from automation.core.events import ContactData

runner = CliRunner()
FORM = "Phiếu đăng ký số 118, cửa hàng Quận 1"


def test_grant_needs_evidence_withdrawal_needs_nothing(
    settings: Settings, session: Session
) -> None:
    lan = upsert_contact(session, "native", ContactData(email="lan@example.vn", phone=PHONE))
    session.commit()
    assert lan is not None
    bare = runner.invoke(app, ["contacts", "consent", "lan@example.vn", "sms", "--grant"])
    assert bare.exit_code != 0 and "--form" in bare.stderr and "Traceback" not in bare.stderr
    assert history(session, lan.id) == []
    granted = runner.invoke(
        app,
        [
            "contacts",
            "consent",
            "lan@example.vn",
            "sms",
            "--grant",
            "--form",
            FORM,
            "--method",
            "paper_form",
            "--json",
        ],
    )
    assert granted.exit_code == 0, granted.stderr
    assert json.loads(granted.stdout)["status"] == "granted"
    withdrawn = runner.invoke(app, ["contacts", "consent", "0912 345 678", "sms"])
    assert withdrawn.exit_code == 0, withdrawn.stderr
    assert "marketing sms denied" in withdrawn.stdout
    session.expire_all()
    records = history(session, lan.id)
    assert [(r.status, r.method, r.form) for r in records] == [
        ("granted", "paper_form", FORM),
        ("denied", "operator", None),
    ]

    shown = runner.invoke(app, ["contacts", "show", "lan@example.vn", "--json"])
    assert shown.exit_code == 0, shown.stderr
    details = json.loads(shown.stdout)
    assert [(e["status"], e["source"], e["form"]) for e in details["consent_evidence"]] == [
        ("granted", "mactl", FORM),
        ("denied", "mactl", None),
    ]
    assert details["consents"][0]["status"] == "denied"
    table = runner.invoke(app, ["contacts", "show", "lan@example.vn"])
    assert "Consent evidence" in table.stdout and "paper_form" in table.stdout


def test_bad_channel_is_one_line(settings: Settings, session: Session) -> None:
    upsert_contact(session, "native", ContactData(email="lan@example.vn"))
    session.commit()
    result = runner.invoke(app, ["contacts", "consent", "lan@example.vn", "fax"])
    assert result.exit_code != 0
    assert "unknown consent channel 'fax'" in result.stderr
    assert "Traceback" not in result.stderr


PHONE = "0912345678"


def test_show_names_the_others_on_a_shared_phone(settings: Settings, session: Session) -> None:
    minh = upsert_contact(session, "native", ContactData(email="minh@example.vn", phone=PHONE))
    mai = upsert_contact(session, "native", ContactData(email="mai@example.vn", phone=PHONE))
    session.commit()
    assert minh is not None and mai is not None and minh.id != mai.id
    shown = runner.invoke(app, ["contacts", "show", PHONE, "--json"])
    assert shown.exit_code == 0, shown.stderr
    details = json.loads(shown.stdout)
    assert details["contact"]["id"] == minh.id  # a phone names the oldest contact on it
    assert details["shares_phone_with"] == [mai.id]
    text = runner.invoke(app, ["contacts", "show", "mai@example.vn"]).stdout
    assert f"shares the phone with: id:{minh.id}" in text
