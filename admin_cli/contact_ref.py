"""The one rule that turns what an operator typed into one contact, for every command.

    id:42 | phone:0912 345 678 | email:lan@example.vn   the prefix forces the kind
    lan@example.vn                                      an e-mail address (has an @)
    0912 345 678, 09123456, +84912345678                a phone number (starts with 0 or +)
    42                                                  a contact id (a bare positive integer)

Anything else (empty, ``²``, an id beyond BIGINT) is an InputError naming the option.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.contacts.identity import AddressError, normalize_email, normalize_phone
from automation.core.config import get_settings
from automation.core.errors import InputError, NotFound
from automation.core.models import MAX_ROW_ID, Contact

#: --help text of every option or argument that takes a contact.
CONTACT_HELP = (
    "Contact: an id (42), a phone number (0912 345 678 or +84...), an e-mail address; "
    "prefix id:, phone: or email: to force the kind."
)
FORMS = "give an id (42), a phone (0912 345 678), an e-mail (lan@example.vn), or id:/phone:/email:"
MAX_ID = MAX_ROW_ID
PREFIXES = ("id", "phone", "email")


def parse_id(text: str, where: str, what: str = "contact id") -> int:
    """A positive ASCII integer that fits a BIGINT; InputError naming ``where`` otherwise."""
    value = text.strip()
    shown = value if len(value) <= 24 else value[:24] + "…"
    if not (value.isascii() and value.isdigit()) or not value.strip("0"):
        raise InputError(f"{shown!r} is not a {what}", where=where, fix="give a positive number")
    if len(value.lstrip("0")) > len(str(MAX_ID)) or int(value) > MAX_ID:
        raise InputError(
            f"{what} {shown} is too large", where=where, fix=f"ids are at most {MAX_ID}"
        )
    return int(value)


def reference_kind(ref: str, where: str = "--contact") -> tuple[str, str]:
    """(``id`` | ``phone`` | ``email``, the value) by the rule in this module's docstring."""
    text = ref.strip()
    if not text:
        raise InputError("the contact reference is empty", where=where, fix=FORMS)
    prefix, colon, rest = text.partition(":")
    if colon and prefix.strip().lower() in PREFIXES:
        return prefix.strip().lower(), rest.strip()
    if "@" in text:
        return "email", text
    if text[0] in "0+":
        return "phone", text
    if text.isascii() and text.isdigit():
        return "id", text
    raise InputError(
        f"{text!r} is not a contact id, a phone number or an e-mail", where=where, fix=FORMS
    )


def resolve_contact(
    session: Session, ref: str, *, where: str = "--contact", region: str | None = None
) -> Contact:
    """The contact ``ref`` names; InputError for a malformed ref, NotFound when none matches.

    Phone numbers without a country code are read in ``region`` (default DEFAULT_REGION).
    """
    kind, value = reference_kind(ref, where)
    if kind == "id":
        contact_id = parse_id(value, where)
        contact = session.get(Contact, contact_id)
        if contact is None:
            raise NotFound(
                f"no contact with id {contact_id}",
                where=where,
                fix="check the id, or look the contact up by phone or e-mail",
            )
        return contact
    try:
        if kind == "email":
            address = normalize_email(value)
            column = Contact.email
        else:
            address = normalize_phone(value, region or get_settings().default_region)
            column = Contact.phone
    except AddressError:
        address = None
    if not address:
        article = "an e-mail address" if kind == "email" else "a phone number"
        raise InputError(f"{value!r} is not {article}", where=where, fix=FORMS)
    contact = session.scalar(select(Contact).where(column == address).order_by(Contact.id))
    if contact is None:
        raise NotFound(
            f"no contact matches {value!r}",
            where=where,
            fix="check the spelling, or import the contact first (`mactl contacts import`)",
        )
    return contact


def contact_label(contact: Contact) -> str:
    """A short human label: name and the first address we have."""
    name = " ".join(p for p in (contact.last_name, contact.first_name) if p)
    address = contact.email or contact.phone or f"#{contact.id}"
    return f"{name} <{address}>" if name else address
