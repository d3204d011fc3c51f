"""Zalo's send-time rules, checked before rendering; a refused row is skipped with the
reason and the step's fallback goes.

* ZNS: a promotion-tag (3) template goes only to people who already transacted with the
  OA; we read that as "the contact has an order".
* OA consultation (non-transactional) messages reach only followers who interacted with
  the OA in the last 7 days. Zalo answers -230 otherwise; after a -230 the contact's
  consultation messages are skipped until they write to the OA again (an inbound
  message recorded in ``last_inbound_at["zalo"]`` after the failure).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core.clock import ensure_utc
from automation.core.config import Settings
from automation.core.models import Contact, Message, Order
from automation.core.vocabulary import CONSENT_CHANNEL, TRANSACTIONAL, Status
from automation.messages.errors import TemplateProblem
from automation.messages.lookup import section
from automation.messages.zns import PROMOTION_TAG, zns_tag

NO_INTERACTION = "Zalo -230"


def refusal(
    session: Session, message: Message, contact: Contact, at: datetime, settings: Settings
) -> str | None:
    """Why this Zalo row may not go now (see the module docstring), else None."""
    if message.channel == "zalo_zns":
        return _promotion_refusal(session, message, contact, at, settings)
    if message.channel == "zalo_oa" and message.purpose != TRANSACTIONAL:
        return _interaction_refusal(session, message, contact)
    return None


def _interaction_refusal(session: Session, message: Message, contact: Contact) -> str | None:
    """A -230 answered for this contact since their last message to the OA."""
    failed = (
        select(func.max(Message.id))
        .where(
            Message.contact_id == contact.id,
            Message.channel == "zalo_oa",
            Message.status == Status.FAILED,
            Message.error.contains(NO_INTERACTION),
        )
    )
    inbound = _stamp((contact.last_inbound_at or {}).get(CONSENT_CHANNEL["zalo_oa"]))
    if inbound is not None:
        failed = failed.where(Message.updated_at > inbound)
    last = session.scalar(failed)
    if last is None:
        return None
    return (
        f"Zalo OA: contact {contact.id} has not interacted with the OA in 7 days (Zalo -230 "
        f"on message {last}); consultation messages wait until they write to the OA"
    )


def _stamp(value: object) -> datetime | None:
    try:
        return ensure_utc(datetime.fromisoformat(str(value))) if value else None
    except ValueError:
        return None


def _promotion_refusal(
    session: Session, message: Message, contact: Contact, at: datetime, settings: Settings
) -> str | None:
    """Why this ZNS row may not go (promotion tag, no prior order), else None."""
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
