"""Can we reach this contact on a channel? Suppressions, bounces and reachability rows.

Plain functions on a Session, written by delivery (provider answers at send time) and
feedback (provider callbacks), read by the send-time policy, segments and ``mactl``:

- ``suppress``: the (consent channel, address) suppression list (hard bounce,
  complaint, unsubscribe);
- ``record_soft_bounce`` / ``soft_bounced``: soft bounces are message events
  (``soft_bounce`` from SMTP 4xx after the last try, a provider's ``temporary_failure``);
  SOFT_BOUNCE_LIMIT of them within SOFT_BOUNCE_WINDOW_DAYS suppress the address;
- ``mark_unreachable`` / ``mark_reachable``: one ``channel_reachability`` row per
  (contact, message channel). A row only counts while its address is still the
  contact's address on that channel: a new phone number makes the contact reachable.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session

from automation.contacts.identity import lenient, normalize_email, normalize_phone
from automation.core.clock import now
from automation.core.config import Settings
from automation.core.db import dialect_insert
from automation.core.models import ChannelReachability, Contact, Message, MessageEvent, Suppression
from automation.core.vocabulary import (
    ADDRESS_FIELD,
    CHANNELS,
    CONSENT_CHANNEL,
    REACHABLE,
    UNREACHABLE,
)

#: Message event types that count as a soft bounce of an e-mail address.
SOFT_BOUNCE_TYPES = ("soft_bounce", "temporary_failure")


def insert_ignore(session: Session, model: Any, values: dict[str, Any], keys: list[str]) -> Any:
    """INSERT ... ON CONFLICT (keys) DO NOTHING RETURNING id; None when it already existed."""
    stmt = (
        dialect_insert(session)(model).values(**values).on_conflict_do_nothing(index_elements=keys)
    )
    session.flush()
    return session.execute(stmt.returning(model.id)).scalar_one_or_none()


def normalize_address(channel: str, address: str) -> str:
    """The stored form of an address: lower-case email, E.164 phone, others trimmed."""
    if channel == "email":
        return lenient(normalize_email, address) or address.strip().lower()
    if channel == "sms":
        return lenient(normalize_phone, address) or address.strip()
    return address.strip()


def suppress(session: Session, channel: str, address: str, reason: str, scope: str) -> bool:
    """Add (channel, address) to the suppression list; True if it was not there yet.

    ``channel`` is a message or consent channel (stored as the consent channel);
    ``reason`` is hard_bounce | soft_bounce | complaint | unsubscribed; ``scope`` is
    marketing | all. An existing row is widened to scope ``all`` when asked, never narrowed.
    """
    channel = CONSENT_CHANNEL.get(channel, channel)
    address = normalize_address(channel, address)
    values = {"channel": channel, "address": address, "reason": reason, "scope": scope}
    keys = ["channel", "address"]
    new_id = insert_ignore(session, Suppression, {**values, "created_at": now()}, keys)
    if new_id is None and scope == "all":
        session.execute(
            update(Suppression)
            .where(Suppression.channel == channel, Suppression.address == address)
            .values(scope="all", reason=reason)
        )
    session.flush()
    return new_id is not None


def record_soft_bounce(
    session: Session, message: Message, provider: str, reason: str, settings: Settings
) -> bool:
    """Store a ``soft_bounce`` event on ``message`` once; True if that suppressed the address."""
    at = now()
    insert_ignore(
        session,
        MessageEvent,
        {
            "message_id": message.id,
            "type": "soft_bounce",
            "provider": provider,
            "provider_event_id": f"soft_bounce:{message.id}",
            "occurred_at": at,
            "payload": {"reason": reason},
        },
        ["provider", "provider_event_id"],
    )
    return soft_bounced(session, message.channel, message.address, at, settings)


def soft_bounced(
    session: Session, channel: str, address: str | None, at: datetime, settings: Settings
) -> bool:
    """Suppress an e-mail address with SOFT_BOUNCE_LIMIT soft-bounced messages in the window."""
    if channel != "email" or not address:
        return False
    since = at - timedelta(days=settings.soft_bounce_window_days)
    count = session.scalar(
        select(func.count(func.distinct(MessageEvent.message_id)))
        .join(Message, Message.id == MessageEvent.message_id)
        .where(
            Message.channel == channel,
            Message.address == address,
            MessageEvent.type.in_(SOFT_BOUNCE_TYPES),
            MessageEvent.occurred_at >= since,
        )
    )
    if (count or 0) < settings.soft_bounce_limit:
        return False
    return suppress(session, channel, address, "soft_bounce", "marketing")


def mark_unreachable(
    session: Session,
    message: Message,
    reason: str,
    code: str | None,
    at: datetime | None = None,
) -> None:
    """The contact cannot be reached on ``message.channel`` at ``message.address``."""
    values = {
        "state": UNREACHABLE,
        "reason": reason[:200],
        "provider_code": code,
        "address": message.address,
        "since": at or now(),
        "message_id": message.id,
    }
    stmt = dialect_insert(session)(ChannelReachability).values(
        contact_id=message.contact_id, channel=message.channel, **values
    )
    session.execute(
        stmt.on_conflict_do_update(index_elements=["contact_id", "channel"], set_=values)
    )


def mark_reachable(session: Session, message: Message, at: datetime | None = None) -> None:
    """A delivery on ``message.channel`` proves the contact reachable there again."""
    session.execute(
        update(ChannelReachability)
        .where(
            ChannelReachability.contact_id == message.contact_id,
            ChannelReachability.channel == message.channel,
            ChannelReachability.state == UNREACHABLE,
        )
        .values(
            state=REACHABLE,
            reason=f"delivered message {message.id}",
            provider_code=None,
            since=at or now(),
            message_id=message.id,
        )
    )


def current_address(channels: tuple[str, ...] = CHANNELS) -> Any:
    """SQL: the row is on one of ``channels`` and its address is still the contact's there."""
    return or_(
        *(
            and_(
                ChannelReachability.channel == name,
                ChannelReachability.address == getattr(Contact, ADDRESS_FIELD[name]),
            )
            for name in channels
        )
    )


def unreachable_sql(channels: tuple[str, ...]) -> Any:
    """SQL on ``contacts``: marked unreachable on one of ``channels`` (never NULL)."""
    return exists(
        select(literal(1))
        .select_from(ChannelReachability)
        .where(
            ChannelReachability.contact_id == Contact.id,
            ChannelReachability.state == UNREACHABLE,
            current_address(channels),
        )
    )


def is_unreachable(contact: Contact, channels: tuple[str, ...], rows: set[tuple[str, str]]) -> bool:
    """Python twin of unreachable_sql: ``rows`` holds (channel, address) marked unreachable."""
    return any(
        (name, getattr(contact, ADDRESS_FIELD[name])) in rows
        for name in channels
        if getattr(contact, ADDRESS_FIELD[name], None)
    )


def channel_states(session: Session, contact: Contact) -> list[dict[str, Any]]:
    """Each message channel's state for ``mactl contacts show``: state, reason, since."""
    rows = {
        r.channel: r
        for r in session.scalars(
            select(ChannelReachability).where(ChannelReachability.contact_id == contact.id)
        )
    }
    mine = {(c, a) for c in CHANNELS if (a := getattr(contact, ADDRESS_FIELD[c], None))}
    suppressed = {
        (s.channel, s.address): s
        for s in session.scalars(
            select(Suppression).where(Suppression.address.in_({a for _, a in mine}))
        )
    }
    states = []
    for channel in CHANNELS:
        address = getattr(contact, ADDRESS_FIELD[channel], None)
        row = rows.get(channel)
        hit = suppressed.get((CONSENT_CHANNEL[channel], address or ""))
        state, reason, code, since, message_id = REACHABLE, "", None, None, None
        if not address:
            state, reason = UNREACHABLE, f"no {ADDRESS_FIELD[channel]}"
        elif row is not None and row.address == address and row.state == UNREACHABLE:
            state, reason, code = UNREACHABLE, row.reason, row.provider_code
            since, message_id = row.since, row.message_id
        elif hit is not None:
            state = UNREACHABLE if hit.scope == "all" else "suppressed (marketing)"
            reason, since = hit.reason, hit.created_at
        elif row is not None:
            reason, since, message_id = row.reason, row.since, row.message_id
        states.append(
            {
                "channel": channel,
                "state": state,
                "reason": reason,
                "provider_code": code,
                "since": since,
                "message_id": message_id,
            }
        )
    return states
