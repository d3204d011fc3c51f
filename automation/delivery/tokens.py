"""Provider tokens in the provider_tokens table, shared by every worker process.

OAuth pairs (Zalo OA, :class:`DbTokenStore`) and one-time callback tokens
(:func:`spend_once`, a callback signature token) live there.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from automation.core.clock import ensure_utc, now
from automation.core.models import ProviderToken


class DbTokenStore:
    """channels.TokenStore on the provider_tokens table (access + refresh saved together).

    Each load/save uses its own short transaction, never the caller's session. The
    first load seeds the row with ``seed`` (the configured access and refresh tokens).
    """

    def __init__(
        self, factory: sessionmaker[Session], provider: str, seed: tuple[str, str]
    ) -> None:
        self.factory, self.provider, self.seed = factory, provider, seed

    def load(self) -> tuple[str, str, float]:
        """(access, refresh, expires_at epoch seconds); seeds the row on first use."""
        stored = self._read()
        if stored is None:
            self._seed()
            stored = self._read()
        if stored is None:  # pragma: no cover - the row was deleted while seeding
            raise RuntimeError(f"provider_tokens row {self.provider!r} vanished while seeding")
        return stored

    def _read(self) -> tuple[str, str, float] | None:
        with self.factory() as session:
            row = session.get(ProviderToken, self.provider)
            if row is None:
                return None
            expires = ensure_utc(row.expires_at).timestamp() if row.expires_at else 0.0
            return row.access_token, row.refresh_token or "", expires

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

    def save(self, access: str, refresh: str, expires_at: float) -> None:
        """Store the rotated pair in one transaction (row locked on PostgreSQL)."""
        with self.factory() as session, session.begin():
            row = session.scalar(
                select(ProviderToken)
                .where(ProviderToken.provider == self.provider)
                .with_for_update()
            )
            if row is None:
                row = ProviderToken(provider=self.provider)
                session.add(row)
            row.access_token, row.refresh_token = access, refresh
            row.expires_at = datetime.fromtimestamp(expires_at, UTC) if expires_at else None
            row.updated_at = now()


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
