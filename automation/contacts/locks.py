"""lock_contact: serialise the work on one contact until the transaction ends."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.db import is_postgres
from automation.core.models import Contact
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
