"""Provider tokens in the provider_tokens table, shared by every worker process.

OAuth pairs (Zalo OA, :class:`DbTokenStore`) and one-time callback tokens
(:func:`spend_once`, a callback signature token) live there.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from automation.core.clock import ensure_utc, now
from automation.core.db import is_postgres
from automation.core.models import ProviderToken
from channels.zalo_token import Tokens


def _epoch(value: datetime | None) -> float:
    return ensure_utc(value).timestamp() if value else 0.0


class DbTokenStore:
    """channels.TokenStore on the provider_tokens table (access + refresh saved together).

    Each load/update uses its own short transaction, never the caller's session. The
    first load seeds the row with ``seed`` (the configured access and refresh tokens).
    """

    def __init__(
        self, factory: sessionmaker[Session], provider: str, seed: tuple[str, str]
    ) -> None:
        self.factory, self.provider, self.seed = factory, provider, seed

    def load(self) -> Tokens:
        """(access, refresh, expires_at epoch seconds); seeds the row on first use."""
        stored = self._read()
        if stored is None:
            self._seed()
            stored = self._read()
        if stored is None:  # pragma: no cover - the row was deleted while seeding
            raise RuntimeError(f"provider_tokens row {self.provider!r} vanished while seeding")
        return stored

    def _read(self) -> Tokens | None:
        with self.factory() as session:
            row = session.get(ProviderToken, self.provider)
            if row is None:
                return None
            return row.access_token, row.refresh_token or "", _epoch(row.expires_at)

    def _seed(self) -> None:
        """Insert the configured pair; never overwrite a pair another worker stored.

        Workers starting together all find no row: the first insert wins and the others
        read it (an upsert here could put back a refresh token already spent).
        """
        access, refresh = self.seed
        # Unknown expiry for a seeded token: assume usable for an hour; a rejection refreshes it.
        expires_at = datetime.fromtimestamp(time.time() + 3600, UTC) if access else None
        row = ProviderToken(
            provider=self.provider,
            access_token=access,
            refresh_token=refresh,
            expires_at=expires_at,
            updated_at=now(),
        )
        try:
            with self.factory() as session, session.begin():
                session.add(row)
        except IntegrityError:
            pass  # another worker seeded it first

    def update(self, change: Callable[[Tokens], Tokens | None]) -> Tokens:
        """Load, ``change`` and save in one transaction holding the row's lock throughout.

        PostgreSQL: ``SELECT ... FOR UPDATE``; SQLite: a no-op UPDATE first takes the
        database write lock. A second worker waits here, then sees the rotated pair.
        """
        self.load()  # seed the row on first use, outside the lock
        with self.factory() as session, session.begin():
            query = select(ProviderToken).where(ProviderToken.provider == self.provider)
            if is_postgres(session):
                query = query.with_for_update()
            else:
                session.execute(
                    update(ProviderToken)
                    .where(ProviderToken.provider == self.provider)
                    .values(provider=ProviderToken.provider, updated_at=ProviderToken.updated_at)
                )
            row = session.scalars(query).one()
            current = (row.access_token, row.refresh_token or "", _epoch(row.expires_at))
            new = change(current)
            if new is None:
                return current
            access, refresh, expires_at = new
            row.access_token, row.refresh_token = access, refresh
            row.expires_at = datetime.fromtimestamp(expires_at, UTC) if expires_at else None
            row.updated_at = now()
            return new

def spend_once(
    factory: sessionmaker[Session], kind: str, token: str, fingerprint: str, expires_at: datetime
) -> bool:
    """Record a one-time callback token (a signature block's token) in provider_tokens.

    True the first time, and again only for the same ``fingerprint`` (a provider retrying
    the same event); False when the token comes back with other data (a replay). Rows are
    keyed ``<kind>:<sha256(token)[:n]>`` and deleted once past ``expires_at``.
    """
    key = f"{kind}:{hashlib.sha256(token.encode()).hexdigest()}"[:32]
    with factory() as session, session.begin():
        session.execute(
            delete(ProviderToken).where(
                ProviderToken.provider.startswith(f"{kind}:"), ProviderToken.expires_at < now()
            )
        )
    row = ProviderToken(provider=key, access_token=fingerprint, expires_at=expires_at)
    try:
        with factory() as session, session.begin():
            session.add(row)
        return True
    except IntegrityError:
        with factory() as session:
            seen = session.get(ProviderToken, key)
            return seen is not None and seen.access_token == fingerprint
