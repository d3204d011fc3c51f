"""Normalise addresses and upsert contacts without merging different people.

The identity rule (a Vietnamese family often shares one phone):

1. the source's own customer id (ContactIdentity) decides first;
2. then the email, then a Zalo user id or Facebook PSID (unique per person);
3. a phone alone links to a contact on that phone only when the contact has no other
   email and no other customer id at the same source; of several such contacts, the one
   whose given names match, else the oldest;
4. otherwise a new contact is created, sharing the phone.

A link never overwrites another person's email (unique addresses are only claimed when
free); a phone-only link fills blank names but never replaces them; consent is recorded
on the contact found or created and never carried to another (see contacts.consent).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import phonenumbers
from sqlalchemy import false, func, or_, select
from sqlalchemy.orm import Session

from automation.contacts.consent import SOURCE_REPORT, record_consent, record_consents
from automation.core.db import is_postgres
from automation.core.errors import InputError
from automation.core.events import ContactData
from automation.core.models import Contact, ContactIdentity
from automation.privacy.hashing import drop_erased

__all__ = [
    "AddressError",
    "find_contact",
    "lenient",
    "normalize_email",
    "normalize_phone",
    "pick_by_name",
    "record_consent",
    "upsert_contact",
]

T = TypeVar("T")


class AddressError(InputError):
    """An email or phone number that cannot be used."""


def normalize_email(value: str | None) -> str | None:
    """Lower-case and trim an email; None for blanks; AddressError when it is not one."""
    if value is None or not value.strip():
        return None
    email = value.strip().lower()
    local, _, domain = email.partition("@")
    if not local or "." not in domain or " " in email:
        raise AddressError(f"not an email address: {value!r}")
    return email


def normalize_phone(value: str | None, region: str = "VN") -> str | None:
    """E.164 form (`0912 345 678` -> `+84912345678`); None for blanks; AddressError if invalid."""
    if value is None or not str(value).strip():
        return None
    try:
        parsed = phonenumbers.parse(str(value), region)
    except phonenumbers.NumberParseException as exc:
        raise AddressError(f"not a phone number: {value!r}") from exc
    if not phonenumbers.is_valid_number(parsed):
        raise AddressError(f"not a valid phone number: {value!r}")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def lenient(normalizer: Any, value: str | None) -> str | None:
    """Normalise, dropping an unusable address instead of failing (shop payloads)."""
    try:
        result: str | None = normalizer(value)
    except AddressError:
        return None
    return result


def find_contact(session: Session, source: str, data: ContactData) -> Contact | None:
    """The contact a payload describes by the identity rule (module docstring), or None."""
    return _match(session, source, data)[0]


def _match(session: Session, source: str, data: ContactData) -> tuple[Contact | None, str]:
    """The matching contact and how it was found: identity, email, zalo_user_id,
    facebook_psid, phone (a weak link), or new (None). Every candidate is read with one
    query; the rule picks among them in that order."""
    columns = (Contact.email, Contact.zalo_user_id, Contact.facebook_psid, Contact.phone)
    wanted = [col == getattr(data, col.key) for col in columns if getattr(data, col.key)]
    linked = None
    if data.external_id:
        linked = Contact.id.in_(
            select(ContactIdentity.contact_id).where(
                ContactIdentity.source == source, ContactIdentity.external_id == data.external_id
            )
        )
        wanted.append(linked)
    if not wanted:
        return None, "new"
    query = select(Contact, linked if linked is not None else false()).where(or_(*wanted))
    candidates = session.execute(query.order_by(Contact.id)).all()
    for contact, by_identity in candidates:
        if by_identity:
            return contact, "identity"
    for column in columns[:3]:
        value = getattr(data, column.key)
        found = next((c for c, _ in candidates if value and getattr(c, column.key) == value), None)
        if found is not None and (
            column is Contact.email or _same_person(session, source, found, data)
        ):
            return found, column.key
    if data.phone:
        on_phone = [c for c, _ in candidates if c.phone == data.phone]
        same = [c for c in on_phone if _same_person(session, source, c, data)]
        if same:
            return pick_by_name(same, _names, data.first_name, data.last_name), "phone"
    return None, "new"


def _same_person(session: Session, source: str, contact: Contact, data: ContactData) -> bool:
    """False when the contact has another email, or another customer id at this source."""
    if contact.email and data.email and contact.email != data.email:
        return False
    if data.external_id:
        other = session.scalar(
            select(ContactIdentity.id).where(
                ContactIdentity.contact_id == contact.id,
                ContactIdentity.source == source,
                ContactIdentity.external_id != data.external_id,
            )
        )
        return other is None
    return True


def pick_by_name(
    candidates: Sequence[T],
    names: Callable[[T], tuple[str | None, str | None]],
    first: str | None,
    last: str | None,
) -> T:
    """Of several people sharing a phone (oldest first): the only one whose given names
    (``names(candidate)`` -> first, last) match ``first``/``last``, else the oldest."""
    wanted = [(i, v.casefold()) for i, v in enumerate((first, last)) if v]
    if len(candidates) > 1 and wanted:
        named = [
            c for c in candidates if all((names(c)[i] or "").casefold() == v for i, v in wanted)
        ]
        if len(named) == 1:
            return named[0]
    return candidates[0]


def _names(contact: Contact) -> tuple[str | None, str | None]:
    return contact.first_name, contact.last_name


def _claimable(session: Session, contact: Contact, column: Any, value: str | None) -> bool:
    """A unique address may be set only if no other contact owns it (never merge people)."""
    if not value or getattr(contact, column.key) == value:
        return False
    owner = session.scalar(select(Contact.id).where(column == value))
    return owner is None or owner == contact.id


def upsert_contact(
    session: Session, source: str, data: ContactData, _rematched: bool = False
) -> Contact | None:
    """Create or update the contact a payload describes; None when nothing identifies it.

    A contact linked by phone alone keeps its names and settings (blanks are filled);
    consents go to the contact found or created, never to anyone else on the phone.
    """
    data.email = lenient(normalize_email, data.email)
    data.phone = lenient(normalize_phone, data.phone)
    if data.is_empty():
        return None
    if data.phone and is_postgres(session):
        # Phones are not unique, so no constraint catches two concurrent payloads creating
        # the same person: serialise matching per phone until this transaction ends.
        session.execute(select(func.pg_advisory_xact_lock(func.hashtext(data.phone))))
    contact, how = _match(session, source, data)
    if drop_erased(session, data, contact) and contact is None and data.is_empty():
        return None  # only a forgotten address identified the person
    created = contact is None
    if contact is None:
        contact = Contact(attributes={}, tags=[], last_inbound_at={})
        session.add(contact)
    with session.no_autoflush:
        for column in (Contact.email, Contact.zalo_user_id, Contact.facebook_psid):
            value = getattr(data, column.key)
            if value and _claimable(session, contact, column, value):
                setattr(contact, column.key, value)
            elif value and created and not _rematched:
                # Nobody owned this address when we matched: a concurrent writer has just
                # created this very person. Match again rather than make a second contact.
                session.expunge(contact)
                return upsert_contact(session, source, data, _rematched=True)
    if data.phone:
        contact.phone = data.phone  # phones may be shared: no claim needed
    for name in ("first_name", "last_name", "locale", "timezone"):
        value = getattr(data, name)
        if value and (how != "phone" or not getattr(contact, name)):
            setattr(contact, name, value)
    if data.attributes:
        contact.attributes = {**(contact.attributes or {}), **data.attributes}
    session.flush()
    if data.external_id and how != "identity":
        _link_identity(session, contact, source, data.external_id)
    record_consents(
        session,
        contact,
        dict(data.consents),
        source,
        method=data.consent_method or SOURCE_REPORT,
        form=data.consent_form,
        given_at=data.consent_at,
    )
    return contact


def _link_identity(session: Session, contact: Contact, source: str, external_id: str) -> None:
    exists = session.scalar(
        select(ContactIdentity.id).where(
            ContactIdentity.source == source, ContactIdentity.external_id == external_id
        )
    )
    if exists is None:
        session.add(ContactIdentity(contact_id=contact.id, source=source, external_id=external_id))
        session.flush()
