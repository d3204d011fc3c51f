"""What the send-time policy reads about a batch, in one query.

Suppressions of the batch's addresses (also through an erased address's keyed hash),
``unreachable`` marks still on the contact's current address, consents (with the
shared-phone rule of automation.contacts.consent) and the do-not-advertise list
(automation.delivery.dnc): five lookups as one ``UNION ALL`` statement, one round trip
and one result instead of five.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Select,
    cast,
    literal_column,
    null,
    select,
    union_all,
)
from sqlalchemy.orm import Session

from automation.contacts.consent import phone_denials, with_phone_denials
from automation.contacts.reachability import current_address
from automation.core.db import among, is_postgres
from automation.core.models import ChannelReachability, Consent, Contact, Suppression
from automation.core.models_sms import DncPhone
from automation.core.vocabulary import UNREACHABLE
from automation.delivery import dnc
from automation.delivery.candidate import Candidate
from automation.privacy.hashing import address_hash


@dataclass(frozen=True)
class Mark:
    """What the policy reads of a suppression or an ``unreachable`` row."""

    channel: str
    address: str | None
    reason: str
    scope: str | None = None


@dataclass
class Facts:
    """The batch's policy facts (see the module docstring)."""

    suppressed: dict[tuple[str, str], Mark] = field(default_factory=dict)  # (channel, address)
    unreachable: dict[tuple[int, str], Mark] = field(default_factory=dict)  # (contact, channel)
    consents: dict[tuple[int, str, str], str] = field(default_factory=dict)
    listed: set[int] = field(default_factory=set)  # message ids whose phone is on the DNC list


def _row(kind: str, *columns: Any) -> Select[Any]:
    """One branch of the union: a kind tag, four strings and a contact id."""
    padded: list[Any] = [*columns, *[null()] * (5 - len(columns))]
    return select(literal_column(f"'{kind}'"), *padded[:4], cast(padded[4], BigInteger))


def _phone_denials(postgres: bool) -> Select[Any]:
    denied = phone_denials().where(among(Contact.phone, "phones", postgres)).subquery()
    return _row("phd", denied.c.channel, denied.c.phone).select_from(denied)


#: Each kind of fact -> its branch of the union (built per dialect).
_BRANCHES: dict[str, Any] = {
    "sup": lambda pg: _row(
        "sup", Suppression.channel, Suppression.address, Suppression.reason, Suppression.scope
    ).where(among(Suppression.address, "addresses", pg)),
    "unr": lambda pg: _row(
        "unr", ChannelReachability.channel, ChannelReachability.address,
        ChannelReachability.reason, null(), ChannelReachability.contact_id,
    )
    .join(Contact, Contact.id == ChannelReachability.contact_id)
    .where(
        among(ChannelReachability.contact_id, "ids", pg),
        ChannelReachability.state == UNREACHABLE,
        current_address(),
    ),
    "con": lambda pg: _row(
        "con", Consent.channel, Consent.purpose, Consent.status, null(), Consent.contact_id
    ).where(among(Consent.contact_id, "ids", pg)),
    "phd": lambda pg: _phone_denials(pg),
    "dnc": lambda pg: _row("dnc", DncPhone.phone).where(among(DncPhone.phone, "dnc", pg)),
}


@lru_cache(maxsize=64)
def _statement(postgres: bool, kinds: tuple[str, ...]) -> Any:
    """The union of ``kinds``' branches, built once (SQLAlchemy then reuses its cache key
    and compiled form instead of deriving them from a new statement every batch)."""
    parts = [_BRANCHES[kind](postgres) for kind in kinds]
    return union_all(*parts) if len(parts) > 1 else parts[0]


def load(session: Session, items: list[Candidate], secret: str) -> Facts:
    """The policy facts of ``items`` (one statement; none when there is nothing to look up)."""
    facts = Facts()
    ids = {c.contact.id for c in items}
    addresses = {c.address for c in items if c.address}
    hashed = {address_hash(a, secret): a for a in addresses}
    phones = {c.contact.phone for c in items if c.contact.phone}
    dnc_phones = dnc.phones_to_check(items)
    wanted = set().union(*dnc_phones.values()) if dnc_phones else set()
    values = {
        "addresses": list(addresses | hashed.keys()),
        "ids": list(ids),
        "phones": list(phones),
        "dnc": list(wanted),
    }
    kinds = tuple(
        kind
        for kind, name in (("sup", "addresses"), ("unr", "ids"), ("con", "ids"),
                           ("phd", "phones"), ("dnc", "dnc"))
        if values[name]
    )
    if not kinds:
        return facts
    params = {name: value for name, value in values.items() if value}
    denials: set[tuple[str, str]] = set()
    listed: set[str] = set()
    for kind, a, b, c, d, n in session.execute(_statement(is_postgres(session), kinds), params):
        if kind == "sup":
            facts.suppressed[(a, hashed.get(b, b))] = Mark(a, b, c, d)
        elif kind == "unr":
            facts.unreachable[(int(n), a)] = Mark(a, b, c)
        elif kind == "con":
            facts.consents[(int(n), a, b)] = c
        elif kind == "phd":
            denials.add((b, a))
        else:
            listed.add(a)
    facts.consents = with_phone_denials(
        [c.contact for c in items if c.contact.phone], facts.consents, denials
    )
    facts.listed = dnc.blocked_ids(dnc_phones, listed)
    return facts
