"""Consent as evidence, and the strictest consent on a shared phone at send time (both backends)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.contacts.consent import (
    current_from_records,
    history,
    record_consent,
    record_consents,
)
from automation.contacts.identity import upsert_contact
from automation.contacts.importer import import_rows, read_csv
from automation.core.config import Settings
from automation.core.errors import InputError
from automation.core.events import ContactData
from automation.core.models import Consent, Contact, Message
from automation.core.models_consent import ConsentRecord
from automation.delivery.candidate import Candidate
from automation.delivery.policy import evaluate

PHONE = "+84912345678"
NOON = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)  # 12:00 in Ho Chi Minh City
FORM = "Ô đánh dấu: Tôi đồng ý nhận tin khuyến mãi qua SMS (form dang-ky-v3)"


def person(session: Session, email: str, phone: str | None = PHONE, **kw: object) -> Contact:
    """A contact created through the identity rule."""
    contact = upsert_contact(session, "native", ContactData(email=email, phone=phone, **kw))  # type: ignore[arg-type]
    assert contact is not None
    return contact


def table_state(session: Session, contact: Contact) -> dict[tuple[str, str], str]:
    """The consents table (the mirror) for one contact."""
    rows = session.scalars(select(Consent).where(Consent.contact_id == contact.id))
    return {(c.channel, c.purpose): c.status for c in rows}


def test_every_decision_is_evidence_and_the_state_is_derivable(session: Session) -> None:
    lan = person(session, "lan@example.vn")
    given = datetime(2026, 10, 1, 3, 0, tzinfo=UTC)
    record_consent(
        session,
        lan,
        "sms",
        "marketing",
        True,
        "native",
        method="web_form",
        form=FORM,
        given_at=given,
    )
    record_consent(session, lan, "sms", "marketing", True, "shopify")  # same: nothing new
    record_consent(session, lan, "sms", "marketing", False, "unsubscribe_page")
    session.commit()
    records = history(session, lan.id)
    assert [(r.status, r.source, r.method) for r in records] == [
        ("granted", "native", "web_form"),
        ("denied", "unsubscribe_page", "unsubscribe_page"),
    ]
    assert (records[0].form, records[0].address, records[0].given_at) == (FORM, PHONE, given)
    assert records[1].given_at > given and records[1].recorded_at is not None
    assert table_state(session, lan) == current_from_records(session, lan.id)
    assert table_state(session, lan) == {("sms", "marketing"): "denied"}


def test_a_late_older_decision_never_overrides_a_newer_one(session: Session) -> None:
    lan = person(session, "lan@example.vn")
    record_consent(session, lan, "email", "marketing", False, "unsubscribe_page")
    stale = datetime.now(UTC) - timedelta(days=3)
    record_consent(session, lan, "email", "marketing", True, "shopify", given_at=stale)
    session.commit()
    assert table_state(session, lan) == {("email", "marketing"): "denied"}
    assert len(history(session, lan.id)) == 1


def test_several_decisions_at_once_follow_the_one_decision_rules(session: Session) -> None:
    """record_consents (a webhook's consents, one contact) keeps record_consent's rules per
    key: an equal state adds nothing, an older decision never overrides a newer one."""
    lan = person(session, "lan@example.vn")
    record_consent(session, lan, "email", "marketing", False, "unsubscribe_page")
    record_consent(session, lan, "sms", "marketing", True, "native")
    stale = datetime.now(UTC) - timedelta(days=3)
    current = record_consents(
        session,
        lan,
        {
            ("email", "marketing"): True,  # older than the unsubscribe: history only
            ("sms", "marketing"): True,  # the same: nothing new
            ("zalo", "marketing"): False,  # new key
            ("sms", "transactional"): True,  # new key
        },
        "shopify",
        given_at=stale,
    )
    session.commit()
    assert table_state(session, lan) == current_from_records(session, lan.id) == {
        ("email", "marketing"): "denied",
        ("sms", "marketing"): "granted",
        ("zalo", "marketing"): "denied",
        ("sms", "transactional"): "granted",
    }
    assert {key: c.status for key, c in current.items()} == table_state(session, lan)
    added = [(r.channel, r.purpose, r.source, r.address) for r in history(session, lan.id)[2:]]
    assert sorted(added) == [
        ("sms", "transactional", "shopify", PHONE),
        ("zalo", "marketing", "shopify", PHONE),
    ]


def test_unknown_channel_is_a_one_line_error_and_stores_nothing(session: Session) -> None:
    lan = person(session, "lan@example.vn")
    with pytest.raises(InputError, match="unknown consent channel 'fax'") as caught:
        record_consent(session, lan, "fax", "marketing", True, "native")
    assert caught.value.fix and "email" in caught.value.fix
    assert history(session, lan.id) == []


def test_source_evidence_travels_with_the_payload(session: Session) -> None:
    at = datetime(2026, 11, 1, 2, 30, tzinfo=UTC)
    data = ContactData(
        email="lan@example.vn",
        consents={("email", "marketing"): True, ("sms", "transactional"): False},
        consent_method="double_opt_in",
        consent_form="https://shop.example.vn/dang-ky#v3",
        consent_at=at,
    )
    lan = upsert_contact(session, "native", data)
    session.commit()
    assert lan is not None
    records = {(r.channel, r.purpose): r for r in history(session, lan.id)}
    assert set(records) == {("email", "marketing"), ("sms", "transactional")}
    email = records[("email", "marketing")]
    assert (email.method, email.form, email.given_at, email.address) == (
        "double_opt_in",
        "https://shop.example.vn/dang-ky#v3",
        at,
        "lan@example.vn",
    )
    assert records[("sms", "transactional")].status == "denied"


def test_no_consent_is_never_a_grant(session: Session) -> None:
    lan = person(session, "lan@example.vn", first_name="Lan")
    session.commit()
    assert table_state(session, lan) == {} and history(session, lan.id) == []


def queued(session: Session, contact: Contact, channel: str, purpose: str = "marketing") -> Message:
    """A queued outbox row for the policy to judge."""
    row = Message(
        step_key=f"{channel}-{purpose}",
        contact_id=contact.id,
        channel=channel,
        purpose=purpose,
        template="t/promo",
        status="queued",
        attempts=0,
        rendered={},
        links={},
        fallback=[],
    )
    session.add(row)
    session.flush()
    return row


def decide(session: Session, settings: Settings, contact: Contact, *messages: Message) -> list[str]:
    """The policy's action for each message (sms/zns to the contact's phone)."""
    items = [Candidate(m, contact, contact.phone) for m in messages]
    return [d.action for d in evaluate(session, items, NOON, settings)]


def test_a_denial_by_anyone_on_the_phone_stops_marketing_to_that_number(
    session: Session, settings: Settings
) -> None:
    minh = person(session, "minh@example.vn", consents={("sms", "marketing"): False})
    mai = person(
        session,
        "mai@example.vn",
        consents={("sms", "marketing"): True, ("zalo", "marketing"): True},
    )
    alone = person(
        session, "lan@example.vn", phone="0903123456", consents={("sms", "marketing"): True}
    )
    session.commit()
    assert mai.id != minh.id and mai.phone == minh.phone == PHONE
    sms, zns, order = (
        queued(session, mai, "sms"),
        queued(session, mai, "zalo_zns"),
        queued(session, mai, "sms", "transactional"),
    )
    assert decide(session, settings, mai, sms, zns, order) == ["skip", "send", "send"]
    record_consent(session, minh, "zalo", "marketing", False, "zalo_oa")
    assert decide(session, settings, mai, zns) == ["skip"]  # takes effect at once
    assert decide(session, settings, alone, queued(session, alone, "sms")) == ["send"]
    assert table_state(session, mai)[("sms", "marketing")] == "granted"  # Mai's own choice


def test_withdrawal_takes_effect_at_once(session: Session, settings: Settings) -> None:
    lan = person(session, "lan@example.vn", consents={("email", "marketing"): True})
    mail = queued(session, lan, "email")
    items = [Candidate(mail, lan, lan.email)]
    assert [d.action for d in evaluate(session, items, NOON, settings)] == ["send"]
    record_consent(session, lan, "email", "marketing", False, "admin", method="phone_call")
    assert [d.action for d in evaluate(session, items, NOON, settings)] == ["skip"]


def test_csv_import_follows_the_identity_rule_and_records_evidence(
    session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "khach.csv"
    path.write_text(
        "email,phone,first_name,consent_sms\n"
        "minh@example.vn,0912 345 678,Minh,no\n"
        "mai@example.vn,0912345678,Mai,yes\n"  # a new email on Minh's phone: Mai
        ",0912345678,Minh Anh,\n"  # phone alone, two people on it: the oldest, not renamed
        "minh@example.vn,0903123456,,\n",  # Minh changes number: Mai keeps hers
        encoding="utf-8",
    )
    _, rows = read_csv(path)
    report = import_rows(session, rows, form="khach.csv (phiếu đăng ký tại cửa hàng)")
    session.commit()
    assert (report.created, report.updated, report.failed) == (2, 2, 0), report.errors
    people = {c.email: c for c in session.scalars(select(Contact))}
    minh, mai = people["minh@example.vn"], people["mai@example.vn"]
    assert (minh.first_name, minh.phone) == ("Minh", "+84903123456")
    assert (mai.first_name, mai.phone) == ("Mai", PHONE)
    assert table_state(session, minh) == {("sms", "marketing"): "denied"}
    assert table_state(session, mai) == {("sms", "marketing"): "granted"}
    record = session.scalars(select(ConsentRecord).where(ConsentRecord.contact_id == mai.id)).one()
    assert (record.method, record.source, record.address) == ("import", "import", PHONE)
    assert record.form == "khach.csv (phiếu đăng ký tại cửa hàng), row 3, column consent_sms"
    again = tmp_path / "again.csv"
    again.write_text("email,consent_sms\nmai@example.vn,no\n", encoding="utf-8")
    _, rows = read_csv(again)
    import_rows(session, rows)
    session.commit()
    assert [r.status for r in history(session, mai.id)] == ["granted", "denied"]
    assert current_from_records(session, mai.id) == table_state(session, mai)
