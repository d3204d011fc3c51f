"""Find a contact from what an operator types: an id, an email or a phone number."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from admin_cli.output import UserError
from automation.contacts.identity import AddressError, normalize_email, normalize_phone
from automation.core.models import Contact


def find_contact(session: Session, ref: str, region: str = "VN") -> Contact:
    """`42` or `id:42` -> by id; `a@b.vn` -> by email; `0912 345 678` -> by E.164 phone.

    Raises UserError naming the reference and what to try when nothing matches.
    """
    text = ref.strip()
    contact: Contact | None = None
    if text.lower().startswith(("id:", "#")):
        digits = text.split(":", 1)[1] if ":" in text else text[1:]
        contact = session.get(Contact, int(digits)) if digits.strip().isdigit() else None
    elif "@" in text:
        try:
            email = normalize_email(text)
        except AddressError as exc:
            raise UserError(f"{text!r} is not an email address") from exc
        contact = session.scalar(select(Contact).where(Contact.email == email))
    elif text.isdigit() and not text.startswith("0") and len(text) <= 8:
        contact = session.get(Contact, int(text))
    else:
        try:
            phone = normalize_phone(text, region)
        except AddressError as exc:
            raise UserError(
                f"{text!r} is not a contact id, an email or a phone number "
                "(try 42, id:42, lan@example.vn or 0912 345 678)"
            ) from exc
        contact = session.scalar(select(Contact).where(Contact.phone == phone))
    if contact is None:
        raise UserError(f"no contact matches {text!r} (try an id, an email or a phone number)")
    return contact
