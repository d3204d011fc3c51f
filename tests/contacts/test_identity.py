"""The identity rule: a family shares one phone, and two people are never merged (both backends)."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.contacts.consent import current_from_records
from automation.contacts.identity import upsert_contact
from automation.core.config import Settings
from automation.core.db import session_factory
from automation.core.events import ContactData
from automation.core.models import Consent, Contact, ContactIdentity

PHONE = "+84912345678"


def consents_of(session: Session, contact: Contact) -> dict[tuple[str, str], str]:
    """The current consents of a contact."""
    rows = session.scalars(select(Consent).where(Consent.contact_id == contact.id))
    return {(c.channel, c.purpose): c.status for c in rows}


def minh(session: Session, **kw: object) -> Contact:
    """Minh, who refused marketing SMS, on the family phone."""
    data = ContactData(
        email="minh.tran@example.vn",
        phone="0912 345 678",
        first_name="Minh",
        last_name="Trần Văn",
        consents={("sms", "marketing"): False},
    )
    for key, value in kw.items():
        setattr(data, key, value)
    contact = upsert_contact(session, "native", data)
    assert contact is not None
    session.commit()
    return contact


def test_new_email_on_a_known_phone_is_a_second_person(session: Session) -> None:
    first = minh(session)
    lead = ContactData(
        email="mai.tran@example.vn",
        phone="0912345678",
        first_name="Mai",
        last_name="Trần Thị",
        consents={("sms", "marketing"): True, ("email", "marketing"): True},
    )
    mai = upsert_contact(session, "native", lead)
    session.commit()
    assert mai is not None and mai.id != first.id
    session.expire_all()
    first = session.get(Contact, first.id)
    assert first is not None
    assert (first.email, first.first_name, first.phone) == ("minh.tran@example.vn", "Minh", PHONE)
    assert consents_of(session, first) == {("sms", "marketing"): "denied"}
    assert (mai.email, mai.first_name, mai.phone) == ("mai.tran@example.vn", "Mai", PHONE)
    assert consents_of(session, mai) == {
        ("sms", "marketing"): "granted",
        ("email", "marketing"): "granted",
    }
    on_phone = select(func.count()).select_from(Contact).where(Contact.phone == PHONE)
    assert session.scalar(on_phone) == 2


def test_source_customer_id_decides_first(session: Session) -> None:
    first = minh(session, external_id="42")
    again = ContactData(external_id="42", email="minh.new@example.vn", first_name="Minh Anh")
    found = upsert_contact(session, "native", again)
    session.commit()
    assert found is not None and found.id == first.id
    assert (found.email, found.first_name) == ("minh.new@example.vn", "Minh Anh")
    other = upsert_contact(session, "shopify", ContactData(external_id="42", phone=PHONE))
    session.commit()
    assert other is not None and other.id == first.id  # no conflict: linked by phone


def test_phone_links_when_the_contact_has_no_other_email(session: Session) -> None:
    first = minh(session, email=None)
    lead = ContactData(email="minh.tran@example.vn", phone=PHONE, first_name="Mai")
    found = upsert_contact(session, "native", lead)
    session.commit()
    assert found is not None and found.id == first.id
    assert found.email == "minh.tran@example.vn"
    assert found.first_name == "Minh"  # a link by phone alone never renames
    assert session.scalar(select(func.count()).select_from(Contact)) == 1


def test_phone_link_fills_blank_names_only(session: Session) -> None:
    first = minh(session, email=None, first_name=None, last_name=None)
    found = upsert_contact(session, "native", ContactData(phone=PHONE, first_name="Minh"))
    session.commit()
    assert found is not None and found.id == first.id and found.first_name == "Minh"


def test_another_customer_id_at_the_same_source_is_another_person(session: Session) -> None:
    first = minh(session, email=None, external_id="7")
    second = upsert_contact(session, "native", ContactData(external_id="8", phone=PHONE))
    session.commit()
    assert second is not None and second.id != first.id and second.phone == PHONE
    rows = session.execute(select(ContactIdentity.external_id, ContactIdentity.contact_id))
    owners = {external_id: contact_id for external_id, contact_id in rows}
    assert owners == {"7": first.id, "8": second.id}


def test_several_people_on_a_phone_pick_by_name_else_the_oldest(session: Session) -> None:
    first = minh(session)
    mai = upsert_contact(
        session, "native", ContactData(email="mai@example.vn", phone=PHONE, first_name="Mai")
    )
    session.commit()
    assert mai is not None
    by_name = upsert_contact(session, "sapo_go", ContactData(phone=PHONE, first_name="mai"))
    nameless = upsert_contact(session, "sapo_go", ContactData(phone=PHONE))
    stranger = upsert_contact(session, "sapo_go", ContactData(phone=PHONE, first_name="Hùng"))
    session.commit()
    assert by_name is not None and by_name.id == mai.id
    assert nameless is not None and nameless.id == first.id
    assert stranger is not None and stranger.id == first.id and stranger.first_name == "Minh"
    assert session.scalar(select(func.count()).select_from(Contact)) == 2


def test_consent_never_moves_to_the_other_person(session: Session) -> None:
    first = minh(session)
    lead = ContactData(email="mai@example.vn", phone=PHONE, consents={("sms", "marketing"): True})
    mai = upsert_contact(session, "native", lead)
    session.commit()
    assert mai is not None
    assert consents_of(session, first) == {("sms", "marketing"): "denied"}
    assert current_from_records(session, first.id) == {("sms", "marketing"): "denied"}
    assert current_from_records(session, mai.id) == {("sms", "marketing"): "granted"}


def test_zalo_id_of_someone_with_another_email_is_not_merged(session: Session) -> None:
    first = minh(session, zalo_user_id="z-1")
    data = ContactData(email="mai@example.vn", zalo_user_id="z-1", first_name="Mai")
    mai = upsert_contact(session, "native", data)
    session.commit()
    assert mai is not None and mai.id != first.id
    assert mai.zalo_user_id is None  # the Zalo id stays with its owner
    session.refresh(first)
    assert (first.email, first.first_name, first.zalo_user_id) == (
        "minh.tran@example.vn",
        "Minh",
        "z-1",
    )


def test_concurrent_payloads_on_one_phone_make_one_person(
    backend: str, settings: Settings, session: Session
) -> None:
    """No unique phone constraint: PostgreSQL serialises matching per phone with a lock.

    (SQLite has one writer at a time, and ingest queues its writers on a process lock.)
    """
    if backend != "postgres":
        pytest.skip("SQLite serialises writers; the race needs two concurrent transactions")
    factory = session_factory(settings)
    first, second = factory(), factory()
    try:
        created = upsert_contact(first, "sapo_go", ContactData(phone=PHONE, first_name="Mai"))
        assert created is not None
        done: list[int] = []

        def racer() -> None:
            found = upsert_contact(second, "sapo_go", ContactData(phone=PHONE))
            second.commit()
            done.append(found.id if found is not None else 0)

        thread = threading.Thread(target=racer)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive()  # waits for the first transaction
        first.commit()
        thread.join(timeout=10)
        assert done == [created.id]
    finally:
        first.close()
        second.close()
    assert session.scalar(select(func.count()).select_from(Contact)) == 1


def test_a_person_created_by_a_concurrent_writer_after_matching_is_not_duplicated(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race window of two workers mapping one new person's orders at once: this call
    matched nothing, and before it claims the email the other writer has committed that
    person. It must use that contact, not create an empty second one."""
    from automation.contacts import identity

    first = upsert_contact(session, "shopify", ContactData(external_id="7", email="bob@example.vn"))
    session.commit()
    real_match = identity._match
    calls: list[int] = []

    def match_before_the_other_commit(*args: object) -> object:
        calls.append(1)
        return (None, "") if len(calls) == 1 else real_match(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(identity, "_match", match_before_the_other_commit)
    again = upsert_contact(session, "shopify", ContactData(external_id="7", email="bob@example.vn"))
    session.commit()
    assert first is not None and again is not None and again.id == first.id
    assert session.scalar(select(func.count()).select_from(Contact)) == 1
