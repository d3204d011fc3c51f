"""lock_contact: serialise the work on one contact until the transaction ends."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.db import is_postgres, one_of
from automation.core.models import Contact, Event
from automation.core.processing import batch_memo


def lock_contact(session: Session, contact_id: int) -> bool:
    """Row-lock the contact (PostgreSQL; SQLite has one writer); False if it is gone.

    The lock lasts until the transaction ends, so an event batch takes it once per contact.
    """
    locked: set[int] = batch_memo(session, "locked_contacts", set)
    if contact_id in locked:
        return True
    query = select(Contact.id).where(Contact.id == contact_id)
    if is_postgres(session):
        query = query.with_for_update()
    if session.scalar(query) is None:
        return False
    locked.add(contact_id)
    return True


def lock_batch_contacts(session: Session, events: list[Event]) -> None:
    """Event batch preparation: load and lock, with one query in id order, the contacts of
    the events not locked yet; the batch keeps them (lock_contact and the segment facts
    then find them without a query)."""
    locked: set[int] = batch_memo(session, "locked_contacts", set)
    wanted = sorted({e.contact_id for e in events if e.contact_id is not None} - locked)
    if not wanted:
        return
    query = select(Contact).where(one_of(session, Contact.id, wanted)).order_by(Contact.id)
    if is_postgres(session):
        query = query.with_for_update()
    kept: dict[int, Contact] = batch_memo(session, "contacts", dict)
    for contact in session.scalars(query, execution_options={"populate_existing": True}):
        kept[contact.id] = contact  # the identity map holds it weakly: keep it for the batch
        locked.add(contact.id)
