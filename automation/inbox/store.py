"""Store canonical events: contacts, identities, consents and events, deduped.

Runs when an inbox delivery is mapped (one transaction per delivery). A (source,
source_event_id) already stored is a duplicate; a concurrent identical mapping is absorbed
by INSERT ... ON CONFLICT DO NOTHING; a race on a new contact's unique address raises
IntegrityError and the caller retries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.contacts.identity import upsert_contact
from automation.core.clock import now
from automation.core.db import dialect_insert
from automation.core.events import ORDER_EVENTS, CanonicalEvent, ContactData
from automation.core.models import Event, Order


@dataclass
class StoreResult:
    """What happened to each event of a request, in request order."""

    event_ids: list[int] = field(default_factory=list)
    new_ids: list[int] = field(default_factory=list)

    @property
    def duplicate(self) -> bool:
        """True when every event was already stored."""
        return bool(self.event_ids) and not self.new_ids


def contact_payload(data: ContactData) -> dict[str, Any]:
    """What the source said about the person, JSON-ready (consents as {channel: {purpose}})."""
    consent: dict[str, dict[str, bool]] = {}
    for (channel, purpose), granted in data.consents.items():
        consent.setdefault(channel, {})[purpose] = granted
    fields = (
        "external_id", "email", "phone", "zalo_user_id", "facebook_psid",
        "first_name", "last_name", "locale", "timezone",
    )
    result: dict[str, Any] = {name: getattr(data, name) for name in fields if getattr(data, name)}
    if data.attributes:
        result["attributes"] = data.attributes
    if consent:
        result["consent"] = consent
    return result


def existing_ids(session: Session, source: str, keys: list[str]) -> dict[str, int]:
    """source_event_id -> id for the keys already stored."""
    found: dict[str, int] = {}
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = session.execute(
            select(Event.source_event_id, Event.id).where(
                Event.source == source, Event.source_event_id.in_(chunk)
            )
        )
        found.update({key: id_ for key, id_ in rows})
    return found


def order_contact_id(session: Session, source: str, event: CanonicalEvent) -> int | None:
    """For an order event without a person (fulfillment, refund): the order's contact."""
    order_id = event.properties.get("order_id")
    if event.type not in ORDER_EVENTS or not order_id:
        return None
    return session.scalar(
        select(Order.contact_id).where(Order.source == source, Order.external_id == str(order_id))
    )


def insert_events(session: Session, rows: list[dict[str, Any]]) -> dict[str, int]:
    """INSERT ... ON CONFLICT DO NOTHING RETURNING (one cached statement, executemany).

    Returns source_event_id -> id for the rows this call inserted.
    """
    if not rows:
        return {}
    table = Event.__table__
    stmt = (
        dialect_insert(session)(table)
        .on_conflict_do_nothing(index_elements=["source", "source_event_id"])
        .returning(table.c.source_event_id, table.c.id)
    )
    return {key: id_ for key, id_ in session.execute(stmt, rows).all()}


def fingerprint(data: ContactData) -> tuple[Any, ...]:
    """Everything upsert_contact reads: equal fingerprints need only one upsert per request."""
    return (
        data.external_id, data.email, data.phone, data.zalo_user_id, data.facebook_psid,
        data.first_name, data.last_name, data.locale, data.timezone,
        repr(sorted(data.attributes.items())), repr(sorted(data.consents.items())),
        data.consent_method, data.consent_form, data.consent_at,
    )


def store_events(session: Session, source: str, events: list[CanonicalEvent]) -> StoreResult:
    """Upsert the contacts and insert the events not yet stored; the caller commits."""
    keys = [e.source_event_id for e in events]
    # A single event skips the look-up: ON CONFLICT catches a redelivery and the caller
    # rolls back (contact changes included). Batches look up first so that events
    # already stored do not touch their contacts again.
    known = existing_ids(session, source, keys) if len(events) > 1 else {}
    result = StoreResult()
    if len(known) == len(set(keys)):
        result.event_ids = [known[k] for k in keys]
        return result
    received = now()
    contacts: dict[tuple[Any, ...], int | None] = {}
    rows: list[dict[str, Any]] = []
    for event in events:
        if event.source_event_id in known:
            continue
        said = contact_payload(event.contact)
        key = fingerprint(event.contact)
        if key not in contacts:
            contact = upsert_contact(session, source, event.contact)
            contacts[key] = contact.id if contact is not None else None
        contact_id = contacts[key]
        if contact_id is None:
            contact_id = order_contact_id(session, source, event)
        rows.append(
            {
                "source": source,
                "source_event_id": event.source_event_id,
                "type": event.type,
                "contact_id": contact_id,
                "occurred_at": event.occurred_at,
                "received_at": received,
                "processed_at": None,
                "payload": {"properties": event.properties, "contact": said},
            }
        )
    inserted = insert_events(session, rows)
    raced = [row["source_event_id"] for row in rows if row["source_event_id"] not in inserted]
    if raced:  # stored by a concurrent delivery since our check
        known.update(existing_ids(session, source, raced))
    known.update(inserted)
    result.new_ids = [inserted[row["source_event_id"]] for row in rows
                      if row["source_event_id"] in inserted]
    result.event_ids = [known[k] for k in keys]
    return result
