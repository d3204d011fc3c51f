"""Normalise addresses and upsert contacts without merging different people."""

from __future__ import annotations

from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.clock import now
from automation.core.errors import InputError
from automation.core.events import ContactData
from automation.core.models import Consent, Contact, ContactIdentity
from automation.privacy.hashing import drop_erased


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
    """Match by source id, then normalised email, then E.164 phone, then channel ids."""
    return _match(session, source, data)[0]


def _match(session: Session, source: str, data: ContactData) -> tuple[Contact | None, bool]:
    """The matching contact and whether it was found through the source's own id."""
    if data.external_id:
        by_identity = session.scalar(
            select(Contact)
            .join(ContactIdentity, ContactIdentity.contact_id == Contact.id)
            .where(
                ContactIdentity.source == source, ContactIdentity.external_id == data.external_id
            )
        )
        if by_identity is not None:
            return by_identity, True
    for column, value in (
        (Contact.email, data.email),
        (Contact.phone, data.phone),
        (Contact.zalo_user_id, data.zalo_user_id),
        (Contact.facebook_psid, data.facebook_psid),
    ):
        if value:
            found = session.scalar(select(Contact).where(column == value))
            if found is not None:
                return found, False
    return None, False


def _claimable(session: Session, contact: Contact, column: Any, value: str | None) -> bool:
    """An address may be set only if no other contact already owns it (never merge people)."""
    if not value or getattr(contact, column.key) == value:
        return False
    owner = session.scalar(select(Contact.id).where(column == value))
    return owner is None or owner == contact.id


def upsert_contact(session: Session, source: str, data: ContactData) -> Contact | None:
    """Create or update the contact a payload describes; None when nothing identifies it."""
    data.email = lenient(normalize_email, data.email)
    data.phone = lenient(normalize_phone, data.phone)
    if data.is_empty():
        return None
    contact, linked = _match(session, source, data)
    if drop_erased(session, data, contact) and contact is None and data.is_empty():
        return None  # only a forgotten address identified the person
    fresh = contact is None  # then _match saw every address unowned: no claim checks needed
    if contact is None:
        contact = Contact(attributes={}, tags=[], last_inbound_at={})
        session.add(contact)
    for column in (Contact.email, Contact.phone, Contact.zalo_user_id, Contact.facebook_psid):
        value = getattr(data, column.key)
        if value and (fresh or _claimable(session, contact, column, value)):
            setattr(contact, column.key, value)
    for name in ("first_name", "last_name", "locale", "timezone"):
        value = getattr(data, name)
        if value:
            setattr(contact, name, value)
    if data.attributes:
        contact.attributes = {**(contact.attributes or {}), **data.attributes}
    session.flush()
    if data.external_id and not linked:
        _link_identity(session, contact, source, data.external_id)
    for (channel, purpose), granted in data.consents.items():
        record_consent(session, contact, channel, purpose, granted, source)
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


def record_consent(
    session: Session, contact: Contact, channel: str, purpose: str, granted: bool, source: str
) -> Consent:
    """Set the current consent for (contact, channel, purpose)."""
    consent = session.scalar(
        select(Consent).where(
            Consent.contact_id == contact.id, Consent.channel == channel, Consent.purpose == purpose
        )
    )
    status = "granted" if granted else "denied"
    if consent is None:
        consent = Consent(contact_id=contact.id, channel=channel, purpose=purpose)
        session.add(consent)
    if consent.status != status:
        consent.status, consent.source, consent.recorded_at = status, source, now()
    session.flush()
    return consent
