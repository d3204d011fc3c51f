"""The identity rule picks among every candidate a payload names, read with one query:
customer id first, then email, Zalo id, Messenger id, and the phone last (a weak link)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from automation.contacts.identity import find_contact, upsert_contact
from automation.core.events import ContactData
from automation.core.models import Contact, ContactIdentity


def _people(session: Session) -> dict[str, int]:
    made = {
        "mail": Contact(email="an@shop.vn"),
        "zalo": Contact(zalo_user_id="z-1"),
        "psid": Contact(facebook_psid="p-1"),
        "phone_old": Contact(phone="+84912345678", first_name="Bình"),
        "phone_new": Contact(phone="+84912345678", first_name="Chi"),
        "customer": Contact(email="other@shop.vn"),
    }
    for contact in made.values():
        contact.attributes, contact.tags, contact.last_inbound_at = {}, [], {}
        session.add(contact)
    session.flush()
    session.add(ContactIdentity(contact_id=made["customer"].id, source="shopify",
                                external_id="cust-9"))
    session.commit()
    return {name: contact.id for name, contact in made.items()}


def _found(session: Session, **fields: str) -> int | None:
    contact = find_contact(session, "shopify", ContactData(**fields))
    return contact.id if contact is not None else None


def test_each_key_wins_over_the_ones_after_it(session: Session) -> None:
    ids = _people(session)
    every = {"email": "an@shop.vn", "zalo_user_id": "z-1", "facebook_psid": "p-1",
             "phone": "+84912345678"}
    assert _found(session, external_id="cust-9", **every) == ids["customer"]
    assert _found(session, external_id="cust-unknown", **every) == ids["mail"]
    del every["email"]
    assert _found(session, **every) == ids["zalo"]
    del every["zalo_user_id"]
    assert _found(session, **every) == ids["psid"]
    del every["facebook_psid"]
    assert _found(session, **every) == ids["phone_old"]  # the oldest on a shared phone
    assert _found(session, phone="+84912345678", first_name="Chi") == ids["phone_new"]
    assert _found(session, email="nobody@shop.vn", phone="+84900000000") is None


def test_a_zalo_match_with_another_customer_id_falls_through_to_the_phone(
    session: Session,
) -> None:
    ids = _people(session)
    session.add(ContactIdentity(contact_id=ids["zalo"], source="shopify", external_id="cust-1"))
    session.commit()
    # the Zalo owner is another customer of this shop: not the same person
    found = _found(session, external_id="cust-2", zalo_user_id="z-1", phone="+84912345678")
    assert found == ids["phone_old"]
    data = ContactData(external_id="cust-9", phone="0912345678")
    contact = upsert_contact(session, "shopify", data)
    assert contact is not None and contact.id == ids["customer"]
