"""Keyed hashes of erased addresses: a forgotten address is never messaged again.

An erased contact's addresses are replaced on the suppression list by
``erased:<HMAC-SHA256(SECRET_KEY, address)>`` rows (reason ``erased``, scope ``all``).
Without the key the hash tells nothing about the address; with it, the send-time policy
and the contact upsert recognise the address when it comes back.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.config import get_settings
from automation.core.events import ContactData
from automation.core.models import Contact, Suppression
from automation.core.vocabulary import CONSENT_CHANNELS

PREFIX = "erased:"
#: Suppression reason of an erased address.
ERASED = "erased"


def address_hash(address: str, secret: str | None = None) -> str:
    """``erased:`` + the hex HMAC-SHA256 of the trimmed, lower-cased address."""
    key = (secret if secret is not None else get_settings().secret_key).encode()
    digest = hmac.new(key, address.strip().lower().encode(), hashlib.sha256).hexdigest()
    return PREFIX + digest


def erased_addresses(session: Session, addresses: Iterable[str | None]) -> set[str]:
    """The addresses among ``addresses`` whose keyed hash is on the suppression list."""
    secret = get_settings().secret_key
    hashed = {address_hash(a, secret): a for a in addresses if a}
    if not hashed:
        return set()
    found = session.scalars(
        select(Suppression.address).where(
            Suppression.channel.in_(CONSENT_CHANNELS),  # the (channel, address) index
            Suppression.address.in_(hashed),
            Suppression.reason == ERASED,
        )
    )
    return {hashed[h] for h in found}


#: ContactData field -> the consent channels its address serves.
FIELD_CHANNELS = {
    "email": ("email",),
    "phone": ("sms", "zalo"),
    "zalo_user_id": ("zalo",),
    "facebook_psid": ("messenger",),
}


def contact_addresses(contact: Contact) -> list[str]:
    """The contact's addresses on every channel (email, phone, Zalo user id, PSID)."""
    values = (contact.email, contact.phone, contact.zalo_user_id, contact.facebook_psid)
    return [v for v in values if v]


def drop_erased(session: Session, data: ContactData, contact: Contact | None = None) -> set[str]:
    """Remove erased addresses (and the consents they carry) from ``data``; the ones removed.

    A person who asked to be forgotten is not re-collected by the next webhook or import:
    the address is not stored again, so it can be neither matched nor messaged. Addresses
    already stored on the matched ``contact`` are not looked up (the usual repeat customer
    costs no query).
    """
    known = contact_addresses(contact) if contact is not None else []
    candidates = (getattr(data, f) for f in FIELD_CHANNELS)
    erased = erased_addresses(session, (a for a in candidates if a not in known))
    for field_name, channels in FIELD_CHANNELS.items():
        if getattr(data, field_name) in erased:
            setattr(data, field_name, None)
            data.consents = {k: v for k, v in data.consents.items() if k[0] not in channels}
    return erased
