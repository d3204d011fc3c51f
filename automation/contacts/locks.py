"""lock_contact: serialise the work on one contact until the transaction ends."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.db import is_postgres, one_of
from automation.core.models import Contact, Event
from automation.core.processing import batch_memo


def lock_contact(session: Session, contact_id: int) -> bool:
    """Row-lock the contact (PostgreSQL; SQLite has one writer); False if it is gone.

    The lock lasts until the transaction ends, so an event batch takes it once per contact,
    and keeps the row it loaded (the segment facts then find it without a query).
    """
    return contact_id in _lock(session, [contact_id])


def lock_batch_contacts(session: Session, events: list[Event]) -> None:
    """Event batch preparation: load and lock, with one query in id order, the contacts of
    the events not locked yet; the batch keeps them (lock_contact and the segment facts
    then find them without a query)."""
    _lock(session, [e.contact_id for e in events if e.contact_id is not None])


def _lock(session: Session, contact_ids: list[int]) -> set[int]:
    """Load and lock those of ``contact_ids`` the batch has not locked yet, in id order;
    the batch's set of locked contact ids."""
    locked: set[int] = batch_memo(session, "locked_contacts", set)
    wanted = sorted(set(contact_ids) - locked)
    if not wanted:
        return locked
    query = select(Contact).where(one_of(session, Contact.id, wanted)).order_by(Contact.id)
    if is_postgres(session):
        query = query.with_for_update()
    kept: dict[int, Contact] = batch_memo(session, "contacts", dict)
    for contact in session.scalars(query, execution_options={"populate_existing": True}):
        kept[contact.id] = contact  # the identity map holds it weakly: keep it for the batch
        locked.add(contact.id)
    return locked
