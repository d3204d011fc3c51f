"""automation.contacts.importer: CSV rows -> contacts, identities, consents (both backends)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.contacts.importer import ImportFileError, import_rows, read_csv, write_error_report
from automation.core.models import Consent, Contact, ContactIdentity

CSV = """email,phone,first_name,last_name,consent_email,consent_sms,tags,city,external_id
lan.nguyen@example.vn,0912 345 678,Lan,Nguyễn Thị,yes,no,"vip, hanoi",Hà Nội,c-1
minh.tran@example.vn,+84 903 123 456,Minh,Trần Văn,1,true,,Đà Nẵng,
not-an-email,0987654321,Hùng,Lê,,,,,
,12345,Bảo,Phạm,,,,,
,,Chi,Võ,,,,,
an.le@example.vn,0911222333,An,Lê,maybe,,,,
"""


def write(tmp_path: Path, text: str, name: str = "contacts.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(session: Session, path: Path, **kwargs: object) -> object:
    _, rows = read_csv(path)
    report = import_rows(session, rows, **kwargs)  # type: ignore[arg-type]
    session.commit()
    return report


def test_import_creates_normalises_and_reports_bad_rows(session: Session, tmp_path: Path) -> None:
    report = run(session, write(tmp_path, CSV))
    assert (report.created, report.updated, report.failed, report.rows) == (2, 0, 4, 6)
    problems = {(e.row, e.column) for e in report.errors}
    assert problems == {(4, "email"), (5, "phone"), (6, "email"), (7, "consent_email")}
    assert all(e.fix for e in report.errors)

    lan = session.scalars(select(Contact).where(Contact.email == "lan.nguyen@example.vn")).one()
    assert lan.phone == "+84912345678"
    assert lan.last_name == "Nguyễn Thị"
    assert lan.attributes == {"city": "Hà Nội"}
    assert lan.tags == ["vip", "hanoi"]
    consents = {c.channel: c.status for c in lan.consents}
    assert consents == {"email": "granted", "sms": "denied"}
    assert all(c.purpose == "marketing" and c.source == "import" for c in lan.consents)
    identity = session.scalars(select(ContactIdentity)).one()
    assert (identity.source, identity.external_id, identity.contact_id) == ("import", "c-1", lan.id)
    minh = session.scalars(select(Contact).where(Contact.phone == "+84903123456")).one()
    assert {c.channel: c.status for c in minh.consents} == {"email": "granted", "sms": "granted"}

    out = tmp_path / "errors.csv"
    write_error_report(report, out)  # type: ignore[arg-type]
    lines = out.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0] == "row,column,problem,fix" and len(lines) == 5


def test_reimport_updates_instead_of_duplicating(session: Session, tmp_path: Path) -> None:
    run(session, write(tmp_path, CSV))
    again = (
        "phone,first_name,consent_email,tags,city,email\n"
        "0912345678,Lan Anh,no,new,Huế,\n"  # matched by phone
        "0903 123 456,,,,,minh.tran@example.vn\n"
        "0977 000 111,Tú,,,,tu@example.vn\n"
    )
    report = run(session, write(tmp_path, again, "again.csv"))
    assert (report.created, report.updated, report.failed) == (1, 2, 0)
    assert session.scalar(select(func.count()).select_from(Contact)) == 3
    session.expire_all()
    lan = session.scalars(select(Contact).where(Contact.phone == "+84912345678")).one()
    assert lan.first_name == "Lan"  # a link by phone alone fills blanks, never renames
    assert lan.last_name == "Nguyễn Thị"  # empty cells never erase
    assert lan.attributes == {"city": "Huế"}
    assert lan.tags == ["vip", "hanoi", "new"]
    assert {c.channel: c.status for c in lan.consents} == {"email": "denied", "sms": "denied"}
    assert session.scalar(select(func.count()).select_from(Consent)) == 4


def test_conflicting_identifiers_are_rejected_not_merged(session: Session, tmp_path: Path) -> None:
    run(session, write(tmp_path, CSV))
    clash = "email,external_id\nminh.tran@example.vn,c-1\n"  # c-1 is Lan's customer id
    report = run(session, write(tmp_path, clash, "clash.csv"))
    assert report.failed == 1 and report.errors[0].row == 2
    assert "different contact" in report.errors[0].problem
    identity = session.scalars(select(ContactIdentity)).one()
    lan = session.scalars(select(Contact).where(Contact.email == "lan.nguyen@example.vn")).one()
    assert identity.contact_id == lan.id


def test_duplicates_inside_one_file_and_across_batches(session: Session, tmp_path: Path) -> None:
    lines = ["email,phone,first_name"]
    for i in range(30):
        lines.append(f"user{i}@example.vn,09{i:08d},A{i}")
    lines.append("user3@example.vn,,Repeat")  # same contact again, later batch
    lines.append(",0900000005,ByPhone")
    report = run(session, write(tmp_path, "\n".join(lines) + "\n"), batch_size=7)
    assert report.failed == 0, report.errors
    assert (report.created, report.updated) == (30, 2)
    assert session.scalar(select(func.count()).select_from(Contact)) == 30
    first_name = select(Contact.first_name)
    assert session.scalar(first_name.where(Contact.email == "user3@example.vn")) == "Repeat"
    # matched by phone alone: linked (no other email) but never renamed
    assert session.scalar(first_name.where(Contact.phone == "+84900000005")) == "A5"


def test_cell_count_mismatch_and_header_errors(session: Session, tmp_path: Path) -> None:
    report = run(session, write(tmp_path, "email,first_name\na@example.vn,A,extra\nb@example.vn\n"))
    assert [(e.row, e.column) for e in report.errors] == [(2, "*"), (3, "*")]
    with pytest.raises(ImportFileError, match="at least one of"):
        read_csv(write(tmp_path, "first_name,last_name\nA,B\n", "noid.csv"))
    with pytest.raises(ImportFileError, match="twice"):
        read_csv(write(tmp_path, "email,Email\n", "dup.csv"))
    latin = tmp_path / "latin.csv"
    latin.write_bytes("email,first_name\nx@example.vn,Nguy\xe1n\n".encode("latin-1"))
    with pytest.raises(ImportFileError, match="not UTF-8"):
        _, rows = read_csv(latin)
        list(rows)


def test_fast_phone_agrees_with_normalize_phone() -> None:
    import random

    from automation.contacts.identity import AddressError, normalize_phone
    from automation.contacts.rows import fast_phone

    def outcome(fn: object, value: str) -> str | None:
        try:
            return fn(value, "VN")  # type: ignore[operator,no-any-return]
        except AddressError:
            return "invalid"

    rng = random.Random(5)
    formats = ["0{}", "+84{}", "84{}", "0{} ", "+84 {}", "(0{})"]
    samples = [
        rng.choice(formats).format("".join(rng.choice("0123456789") for _ in range(9)))
        for _ in range(5000)
    ]
    samples += ["0912 345 678", "091.234.5678", "+84 912-345-678", "0512345678", "0212345678"]
    assert [outcome(fast_phone, s) for s in samples] == [
        outcome(normalize_phone, s) for s in samples
    ]
    assert fast_phone("0912 345 678", "VN") == "+84912345678"


def test_rows_identified_only_by_external_id(session: Session, tmp_path: Path) -> None:
    text = (
        "external_id,first_name,email\n"
        "shop-1,Lan,\nshop-2,Minh,minh@example.vn\nshop-1,Lan Anh,\n"
    )
    report = run(session, write(tmp_path, text), source="haravan")
    assert (report.created, report.updated, report.failed) == (2, 1, 0)
    path = write(tmp_path, "external_id,last_name\nshop-1,Trần\n", "b.csv")
    again = run(session, path, source="haravan")
    assert (again.created, again.updated) == (0, 1)
    session.expire_all()
    identity = session.scalars(
        select(ContactIdentity).where(ContactIdentity.external_id == "shop-1")
    ).one()
    assert identity.source == "haravan"
    contact = session.get(Contact, identity.contact_id)
    assert contact is not None and (contact.first_name, contact.last_name) == ("Lan Anh", "Trần")
    assert session.scalar(select(func.count()).select_from(Contact)) == 2


def test_nul_byte_rejects_only_its_row(session: Session, tmp_path: Path) -> None:
    text = (
        "email,first_name,city\n"
        "lan@example.vn,Lan,Hà Nội\n"
        "minh@example.vn,Mi\x00nh,Huế\n"
        "an@example.vn,An,Đà\x00Nẵng\n"
        "chi@example.vn,Chi,Cần Thơ\n"
    )
    report = run(session, write(tmp_path, text))
    assert (report.created, report.failed, report.rows) == (2, 2, 4)
    assert [(e.row, e.column) for e in report.errors] == [(3, "first_name"), (4, "city")]
    assert all("NUL" in e.problem and e.fix for e in report.errors)
    stored = session.scalars(select(Contact.email).order_by(Contact.email)).all()
    assert stored == ["chi@example.vn", "lan@example.vn"]
