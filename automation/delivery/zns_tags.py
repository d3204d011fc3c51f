"""ZNS template tags at send time: promotion-tag templates need a prior transaction.

Zalo lets an OA send a promotion-tag (3) ZNS template only to people who already
transacted with it; we read that as "the contact has an order". Without one the row is
skipped with the reason (and the step's fallback goes).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.config import Settings
from automation.core.models import Contact, Message, Order
from automation.messages.errors import TemplateProblem
from automation.messages.lookup import section
from automation.messages.zns import PROMOTION_TAG, zns_tag


def promotion_refusal(
    session: Session, message: Message, contact: Contact, at: datetime, settings: Settings
) -> str | None:
    """Why this ZNS row may not go (promotion tag, no prior order), else None."""
    if message.channel != "zalo_zns":
        return None
    try:
        sec, used = section(message.template, "zalo_zns", contact.locale, settings)
        tag = zns_tag(sec, f"template {message.template!r} [{used}] zalo_zns")
    except TemplateProblem:
        return None  # rendering reports the problem and fails the row
    if tag != PROMOTION_TAG:
        return None
    ordered = session.scalar(
        select(Order.id).where(Order.contact_id == contact.id, Order.placed_at <= at).limit(1)
    )
    if ordered is not None:
        return None
    return (
        f"ZNS template {message.template!r} has tag 3 (promotion): Zalo allows it only after "
        f"a transaction, and contact {contact.id} has no order"
    )
