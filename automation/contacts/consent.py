"""Consent as evidence: append-only records, the current state, the shared-phone rule.

Every consent decision is one ConsentRecord row: channel, purpose, granted or denied
(refused or withdrawn), source, method, form (its text or a reference to it), the
address it concerns, when the person gave it and when we recorded it. The consents
table mirrors the newest record per (contact, channel, purpose) for fast reads
(segments, send-time policy); :func:`current_from_records` derives the same state from
the records alone. Nothing defaults to granted: no row means no consent.

Consent belongs to the person who gave it: identity matching never carries it to another
contact. A family often shares one phone, so at send time a marketing SMS or Zalo denial
by any contact on a phone stops marketing on that channel for every contact on it
(:func:`phone_denials` and :func:`with_phone_denials`, read with the delivery policy's
other facts in automation.delivery.facts).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, Table, insert, select
from sqlalchemy.orm import Session

from automation.contacts.bulk import bulk_insert, bulk_update
from automation.core.clock import ensure_utc, now
from automation.core.db import one_of
from automation.core.errors import InputError
from automation.core.models import Consent, Contact
from automation.core.models_consent import ConsentRecord
from automation.core.vocabulary import (
    CONSENT_CHANNELS,
    DENIED,
    GRANTED,
    MARKETING,
    PHONE_CONSENT_CHANNELS,
    PURPOSES,
)

#: Method recorded when the source reports a choice without saying how it was made.
SOURCE_REPORT = "source_report"
#: Consent channel -> the contact column holding the address it concerns.
ADDRESS_COLUMN = {"email": "email", "sms": "phone", "zalo": "phone", "messenger": "facebook_psid"}
CONSENTS: Table = Consent.__table__  # type: ignore[assignment]
RECORDS: Table = ConsentRecord.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class Choice:
    """One consent decision of a batch job (CSV import), for :func:`record_many`."""

    contact_id: int
    channel: str
    purpose: str
    granted: bool
    address: str | None
    form: str | None


def check_key(channel: str, purpose: str, where: str = "consent") -> None:
    """InputError unless channel and purpose are consent words we know."""
    if channel not in CONSENT_CHANNELS:
        raise InputError(
            f"unknown consent channel {channel!r}",
            where=where,
            fix=f"use one of {', '.join(CONSENT_CHANNELS)}",
        )
    if purpose not in PURPOSES:
        raise InputError(
            f"unknown consent purpose {purpose!r}",
            where=where,
            fix=f"use one of {', '.join(PURPOSES)}",
        )


def record_consent(
    session: Session,
    contact: Contact,
    channel: str,
    purpose: str,
    granted: bool,
    source: str,
    *,
    method: str | None = None,
    form: str | None = None,
    given_at: datetime | None = None,
    address: str | None = None,
) -> Consent | None:
    """Record one consent decision as evidence and make it the current state at once.

    A decision equal to the current state adds nothing; one older than the newest
    record (a late webhook) is history that never overrides a newer choice. Returns the
    current Consent row (None when no decision was ever recorded for the key).
    """
    recorded = record_consents(
        session, contact, {(channel, purpose): granted}, source,
        method=method, form=form, given_at=given_at, address=address,
    )  # fmt: skip
    return recorded.get((channel, purpose))


def record_consents(
    session: Session,
    contact: Contact,
    decisions: dict[tuple[str, str], bool],
    source: str,
    *,
    method: str | None = None,
    form: str | None = None,
    given_at: datetime | None = None,
    address: str | None = None,
) -> dict[tuple[str, str], Consent]:
    """record_consent for several decisions of one contact ((channel, purpose) ->
    granted, with the same evidence): the current state and the newest records of the
    contact read with one query each, the changes written with one flush, one INSERT of
    the new consents rows and one executemany of the records.

    Returns (channel, purpose) -> the current Consent row, for the keys that have one.
    """
    for channel, purpose in decisions:
        check_key(channel, purpose)
    if not decisions:
        return {}
    stamp = now()
    given = ensure_utc(given_at) if given_at is not None else stamp
    current = {
        (c.channel, c.purpose): c
        for c in session.scalars(select(Consent).where(Consent.contact_id == contact.id))
    }
    newest = {  # the last record per key wins (records are appended in id order)
        (channel, purpose): at
        for channel, purpose, at in session.execute(
            select(ConsentRecord.channel, ConsentRecord.purpose, ConsentRecord.given_at)
            .where(ConsentRecord.contact_id == contact.id)
            .order_by(ConsentRecord.id)
        )
    }
    records: list[dict[str, Any]] = []
    fresh: list[dict[str, Any]] = []  # consents rows to create
    for (channel, purpose), granted in decisions.items():
        status = GRANTED if granted else DENIED
        consent = current.get((channel, purpose))
        last = newest.get((channel, purpose))
        if (consent is not None and consent.status == status) or (
            last is not None and given < last
        ):
            continue
        records.append(
            {
                "contact_id": contact.id,
                "channel": channel,
                "purpose": purpose,
                "status": status,
                "source": source,
                "method": method or source,
                "form": form,
                "address": address or getattr(contact, ADDRESS_COLUMN[channel]),
                "given_at": given,
                "recorded_at": stamp,
            }
        )
        if consent is None:
            fresh.append({"contact_id": contact.id, "channel": channel, "purpose": purpose,
                          "status": status, "source": source, "recorded_at": stamp})
            continue
        consent.status, consent.source, consent.recorded_at = status, source, stamp
    if records:
        session.flush()
        # New rows with one multi-row INSERT ... RETURNING (a flush writes one row per
        # statement on SQLite); the evidence, which nobody reads back here, with one
        # executemany.
        if fresh:
            for consent in session.scalars(insert(Consent).returning(Consent), fresh):
                current[(consent.channel, consent.purpose)] = consent
        session.execute(insert(ConsentRecord), records)
    return {key: current[key] for key in decisions if key in current}


def record_many(
    conn: Connection, choices: list[Choice], source: str, method: str, stamp: datetime
) -> int:
    """record_consent for a batch in a few statements; returns how many decisions changed.

    Like record_consent, a choice equal to the current state adds nothing.
    """
    if not choices:
        return 0
    current = {
        (contact_id, channel, purpose): (consent_id, status)
        for consent_id, contact_id, channel, purpose, status in conn.execute(
            select(
                CONSENTS.c.id,
                CONSENTS.c.contact_id,
                CONSENTS.c.channel,
                CONSENTS.c.purpose,
                CONSENTS.c.status,
            ).where(one_of(conn, CONSENTS.c.contact_id, {c.contact_id for c in choices}))
        )
    }
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    records: list[dict[str, Any]] = []
    for choice in choices:
        status = GRANTED if choice.granted else DENIED
        key = (choice.contact_id, choice.channel, choice.purpose)
        found = current.get(key)
        if found is not None and found[1] == status:
            continue
        row = {"status": status, "source": source, "recorded_at": stamp}
        if found is None:
            inserts.append({"contact_id": key[0], "channel": key[1], "purpose": key[2], **row})
            current[key] = (0, status)
        else:
            updates.append({"id": found[0], **row})
            current[key] = (found[0], status)
        records.append(
            {
                "contact_id": key[0],
                "channel": key[1],
                "purpose": key[2],
                **row,
                "method": method,
                "form": choice.form,
                "address": choice.address,
                "given_at": stamp,
            }
        )
    bulk_insert(conn, CONSENTS, inserts)
    bulk_update(conn, CONSENTS, updates)
    bulk_insert(conn, RECORDS, records)
    return len(records)


def history(session: Session, contact_id: int) -> list[ConsentRecord]:
    """Every consent record of a contact, oldest first."""
    return list(
        session.scalars(
            select(ConsentRecord)
            .where(ConsentRecord.contact_id == contact_id)
            .order_by(ConsentRecord.id)
        )
    )


def current_from_records(session: Session, contact_id: int) -> dict[tuple[str, str], str]:
    """(channel, purpose) -> status, derived from the evidence alone (newest record wins)."""
    return {(r.channel, r.purpose): r.status for r in history(session, contact_id)}


def phone_denials() -> Select[str | None, str]:
    """SQL: (phone, channel) of the denied marketing SMS / Zalo consents (the caller adds
    which phones: ``.where(Contact.phone ...)``)."""
    return (
        select(Contact.phone, Consent.channel)
        .join(Consent, Consent.contact_id == Contact.id)
        .where(
            Consent.purpose == MARKETING,
            Consent.status == DENIED,
            Consent.channel.in_(PHONE_CONSENT_CHANNELS),
        )
    )


def with_phone_denials(
    contacts: Iterable[Contact],
    consents: dict[tuple[int, str, str], str],
    denied: set[tuple[str, str]],
) -> dict[tuple[int, str, str], str]:
    """``consents`` with the (phone, channel) denials of :func:`phone_denials` applied to
    every contact on the phone."""
    if not denied:
        return consents
    result = dict(consents)
    for contact in contacts:
        for channel in PHONE_CONSENT_CHANNELS:
            if (contact.phone, channel) in denied:
                result[(contact.id, channel, MARKETING)] = DENIED
    return result
