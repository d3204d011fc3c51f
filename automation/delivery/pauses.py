"""Channel pauses: a provider said "no more today" (ZNS daily quota), so nothing is sent on
that channel until the quota resets, instead of every message trying and failing.

A pause is a provider_tokens row keyed ``pause:<channel>`` (the reason in
``access_token``, the end in ``expires_at``): provider state shared by every worker
process, like the OAuth pairs. automation.delivery.send checks it before each provider
call and holds the rows (fallback now, else deferred until the end); ``mactl doctor``
lists the pauses in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.clock import ensure_utc, now
from automation.core.db import dialect_insert
from automation.core.models import ProviderToken

PREFIX = "pause:"


@dataclass(frozen=True)
class Pause:
    """No sends on ``channel`` before ``until`` (UTC), because of ``reason``."""

    channel: str
    until: datetime
    reason: str


def next_midnight(at: datetime, timezone: str) -> datetime:
    """The next local midnight in ``timezone`` after ``at``, as a UTC-aware datetime."""
    zone = ZoneInfo(timezone)
    local = at.astimezone(zone)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0), tzinfo=zone)
    return midnight.astimezone(at.tzinfo)


def pause(session: Session, channel: str, until: datetime, reason: str) -> Pause:
    """Pause ``channel`` until ``until`` (a later end already stored wins); flushes."""
    key = PREFIX + channel
    session.execute(
        dialect_insert(session)(ProviderToken)
        .values(provider=key, access_token=reason, expires_at=until, updated_at=now())
        .on_conflict_do_nothing(index_elements=["provider"])
    )
    row = session.get(ProviderToken, key, with_for_update=True, populate_existing=True)
    assert row is not None
    if row.expires_at is None or ensure_utc(row.expires_at) < until:
        row.access_token, row.expires_at = reason, until
    session.flush()
    return Pause(channel, ensure_utc(row.expires_at or until), row.access_token)


def paused(session: Session, channel: str, at: datetime) -> Pause | None:
    """The pause in force on ``channel`` at ``at``, if any."""
    row = session.get(ProviderToken, PREFIX + channel, populate_existing=True)
    if row is None or row.expires_at is None or ensure_utc(row.expires_at) <= at:
        return None
    return Pause(channel, ensure_utc(row.expires_at), row.access_token)


def active_pauses(session: Session, at: datetime) -> list[Pause]:
    """Every pause in force at ``at`` (for ``mactl doctor``)."""
    rows = session.scalars(
        select(ProviderToken).where(ProviderToken.provider.startswith(PREFIX))
    )
    return [
        Pause(r.provider.removeprefix(PREFIX), ensure_utc(r.expires_at), r.access_token)
        for r in rows
        if r.expires_at is not None and ensure_utc(r.expires_at) > at
    ]
