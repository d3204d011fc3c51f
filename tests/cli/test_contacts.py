"""`mactl contacts import|show` through the real Typer app on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from admin_cli.main import app
from automation.core.config import Settings
from automation.core.models import Contact, Event

runner = CliRunner()

CSV = """\ufeffEmail,Phone,First Name,Last Name,consent_email,consent_sms,consent_zalo,tags,Tỉnh
hoa.pham@example.vn,0912 345 678,Hoa,Phạm Thị,yes,no,1,"vip,hcm",Hồ Chí Minh
duc.vo@example.vn,090-312-3456,Đức,Võ Minh,false,,,,Cần Thơ
khong-hop-le,0987 654 321,Quỳnh,Đặng,,,,,
,0912,Sơn,Bùi,,,,,
,,Trang,Ngô,,,,,
"""


def _import(tmp_path: Path, text: str, *args: str) -> tuple[int, str, str]:
    path = tmp_path / "contacts.csv"
    path.write_text(text, encoding="utf-8")
    result = runner.invoke(app, ["contacts", "import", str(path), *args])
    return result.exit_code, result.stdout, result.stderr


def test_import_reports_rows_and_upserts(
    settings: Settings, session: Session, tmp_path: Path
) -> None:
    errors_csv = tmp_path / "errors.csv"
    code, out, _ = _import(tmp_path, CSV, "--json", "--errors-csv", str(errors_csv))
    assert code == 1  # some rows failed
    summary = json.loads(out)
    assert (summary["created"], summary["updated"], summary["failed"]) == (2, 0, 3)
    assert [(e["row"], e["column"]) for e in summary["errors"]] == [
        (4, "email"),
        (5, "phone"),
        (6, "email"),
    ]
    with errors_csv.open(encoding="utf-8-sig") as handle:
        written = list(csv.DictReader(handle))
    assert [row["row"] for row in written] == ["4", "5", "6"]
    assert all(row["fix"] for row in written)

    hoa = session.scalars(select(Contact).where(Contact.phone == "+84912345678")).one()
    assert (hoa.email, hoa.first_name, hoa.last_name) == ("hoa.pham@example.vn", "Hoa", "Phạm Thị")
    assert hoa.attributes == {"tỉnh": "Hồ Chí Minh"}
    assert {(c.channel, c.status) for c in hoa.consents} == {
        ("email", "granted"),
        ("sms", "denied"),
        ("zalo", "granted"),
    }

    again = "email,phone,first_name,consent_sms\nhoa.pham@example.vn,,Hoà,yes\n,0903123456,,no\n"
    code, out, _ = _import(tmp_path, again, "--json")
    assert code == 0
    assert json.loads(out)["updated"] == 2 and json.loads(out)["created"] == 0
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Contact)) == 2
    hoa = session.scalars(select(Contact).where(Contact.phone == "+84912345678")).one()
    assert hoa.first_name == "Hoà"
    assert {c.channel: c.status for c in hoa.consents}["sms"] == "granted"


def test_import_human_output_and_file_errors(settings: Settings, tmp_path: Path) -> None:
    code, out, _ = _import(tmp_path, CSV)
    assert code == 1
    assert "Row errors (3)" in out and "5 rows: 2 created, 0 updated, 3 failed" in out
    missing = runner.invoke(app, ["contacts", "import", str(tmp_path / "nope.csv")])
    assert missing.exit_code == 2
    assert "nope.csv: no such file" in missing.stderr and "Traceback" not in missing.output
    code, _, err = _import(tmp_path, "first_name,city\nLan,Huế\n")
    assert code == 2
    assert err.count("\n") == 1 and "at least one of" in err


def test_show_json(settings: Settings, session: Session, tmp_path: Path) -> None:
    _import(tmp_path, CSV)
    hoa = session.scalars(select(Contact).where(Contact.email == "hoa.pham@example.vn")).one()
    hoa.orders_count, hoa.total_spent = 2, 1_250_000
    session.add(
        Event(
            source="shopify",
            source_event_id="o-1",
            type="order.paid",
            contact_id=hoa.id,
            occurred_at=hoa.created_at,
            payload={"properties": {"order_id": "1001", "total": 1_250_000}},
        )
    )
    session.commit()
    for ref in ("0912 345 678", "HOA.PHAM@example.vn", str(hoa.id), f"id:{hoa.id}"):
        result = runner.invoke(app, ["contacts", "show", ref, "--json"])
        assert result.exit_code == 0, result.output
        data = json.loads(result.stdout)
        assert data["contact"]["id"] == hoa.id
    assert data["contact"]["phone"] == "+84912345678"
    assert data["contact"]["tags"] == ["vip", "hcm"]
    assert data["rollups"]["orders_count"] == 2 and data["rollups"]["total_spent"] == 1_250_000
    assert {c["channel"]: c["status"] for c in data["consents"]}["zalo"] == "granted"
    assert [e["type"] for e in data["events"]] == ["order.paid"]
    assert data["events"][0]["properties"]["order_id"] == "1001"

    human = runner.invoke(app, ["contacts", "show", "hoa.pham@example.vn"])
    assert human.exit_code == 0 and "Phạm Thị Hoa" in human.stdout and "1,250,000" in human.stdout

    missing = runner.invoke(app, ["contacts", "show", "nobody@example.vn"])
    assert missing.exit_code == 2 and "no contact matches" in missing.stderr
    garbage = runner.invoke(app, ["contacts", "show", "xyz"])
    assert garbage.exit_code == 2 and "not a contact id" in garbage.stderr


def test_import_refreshes_segments(settings: Settings, session: Session, tmp_path: Path) -> None:
    from automation.core.models import Segment, SegmentMembership
    from automation.segments.rules import load_segment_text
    from automation.segments.store import apply_segments

    text = "segment: reachable_email\nname: Nhận email\nrule: {reachable: email}\n"
    apply_segments(session, [load_segment_text(text, "reachable_email.yaml")])
    session.commit()
    code, out, _ = _import(tmp_path, "email,consent_email\nlan@example.vn,yes\n", "--json")
    assert code == 0
    assert json.loads(out)["segments"] == {"reachable_email": {"entered": 1, "exited": 0}}
    member = session.scalars(
        select(SegmentMembership.contact_id)
        .join(Segment, Segment.id == SegmentMembership.segment_id)
        .where(Segment.key == "reachable_email", SegmentMembership.exited_at.is_(None))
    ).one()
    lan = session.scalars(select(Contact).where(Contact.email == "lan@example.vn")).one()
    assert member == lan.id
    entered = session.scalars(select(Event).where(Event.type == "segment.entered")).all()
    assert [e.contact_id for e in entered] == [lan.id]  # sequences see the entry via events


def test_import_nul_byte_reports_the_row_and_keeps_the_others(
    settings: Settings, session: Session, tmp_path: Path
) -> None:
    errors_csv = tmp_path / "errors.csv"
    text = "email,first_name\nlan@example.vn,Lan\nminh@example.vn,Mi\x00nh\nan@example.vn,An\n"
    code, out, err = _import(tmp_path, text, "--json", "--errors-csv", str(errors_csv))
    assert code == 1 and "Traceback" not in out + err
    summary = json.loads(out)
    assert (summary["created"], summary["failed"]) == (2, 1)
    with errors_csv.open(encoding="utf-8-sig") as handle:
        written = list(csv.DictReader(handle))
    assert [(r["row"], r["column"]) for r in written] == [("3", "first_name")]
    assert "NUL" in written[0]["problem"]
    emails = session.scalars(select(Contact.email).order_by(Contact.email)).all()
    assert emails == ["an@example.vn", "lan@example.vn"]
