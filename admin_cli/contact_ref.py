"""Resolve what an operator typed (id, e-mail or phone) to one contact."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from admin_cli.output import UserError
from automation.contacts.identity import AddressError, normalize_email, normalize_phone
from automation.core.models import Contact


def resolve_contact(session: Session, ref: str) -> Contact:
    """The contact for a database id, an e-mail address or a phone number; UserError if none."""
    text = ref.strip()
    contact: Contact | None = None
    if text.isdigit() and len(text) < 9:
        contact = session.get(Contact, int(text))
    elif "@" in text:
        try:
            email = normalize_email(text)
        except AddressError as exc:
            raise UserError(f"--contact: {exc}") from None
        contact = session.scalar(select(Contact).where(Contact.email == email))
    else:
        try:
            phone = normalize_phone(text)
        except AddressError:
            raise UserError(
                f"--contact: {ref!r} is not a contact id, e-mail or phone number"
            ) from None
        contact = session.scalar(select(Contact).where(Contact.phone == phone))
    if contact is None:
        raise UserError(f"--contact: no contact matches {ref!r} (try `mactl contacts list`)")
    return contact


def contact_label(contact: Contact) -> str:
    """A short human label: name and the first address we have."""
    name = " ".join(p for p in (contact.last_name, contact.first_name) if p)
    address = contact.email or contact.phone or f"#{contact.id}"
    return f"{name} <{address}>" if name else address
