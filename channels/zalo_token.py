"""Zalo OA access tokens: where they live and how they are refreshed.

Zalo access tokens expire (about 25 h); the refresh token lives about 3 months,
is single-use and *rotates* on every refresh: the new pair must be saved
together (atomically) or the next refresh fails. The automation layer implements
:class:`TokenStore` on the database, where ``update`` holds a lock across load,
refresh and save so two worker processes never spend the same refresh token;
:class:`InMemoryTokenStore` is for tests and demos.

Refresh: ``POST {oauth_base}/v4/oa/access_token``, form ``refresh_token``,
``app_id``, ``grant_type=refresh_token``, header ``secret_key`` (the app
secret). Answer: ``access_token``, ``refresh_token``, ``expires_in`` (seconds,
sometimes as a string); failures come back as ``error`` / ``error_name`` /
``error_description`` and are raised as TransientError (an operator must
re-authorise the app).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol

import httpx

from channels.errors import TransientError
from channels.httpchannel import default_client, json_object
from channels.retry import RetryPolicy, request_with_retry

ZALO_OAUTH_BASE = "https://oauth.zaloapp.com"


class ZaloTokenProvider(Protocol):
    """Hands out a usable access token; ``refresh`` replaces a rejected one."""

    def get(self) -> str: ...

    def refresh(self, stale: str | None = None) -> str: ...


Tokens = tuple[str, str, float]  # (access token, refresh token, access expiry epoch seconds)


class TokenStore(Protocol):
    """Persists ``(access_token, refresh_token, expires_at)`` (epoch seconds)."""

    def load(self) -> Tokens: ...

    def update(self, change: Callable[[Tokens], Tokens | None]) -> Tokens:
        """Under an exclusive lock: load, ``change`` (None = keep), save; the result."""
        ...


class InMemoryTokenStore:
    """A TokenStore held in memory (tests, demos)."""

    def __init__(self, access: str, refresh: str, expires_at: float) -> None:
        self.value: Tokens = (access, refresh, expires_at)
        self.saves = 0
        self._lock = threading.Lock()

    def load(self) -> Tokens:
        """Return the current triple."""
        return self.value

    def update(self, change: Callable[[Tokens], Tokens | None]) -> Tokens:
        """Apply ``change`` under a lock; count the saves."""
        with self._lock:
            new = change(self.value)
            if new is not None:
                self.value = new
                self.saves += 1
            return self.value


class StaticToken:
    """A fixed access token with no way to refresh it."""

    def __init__(self, token: str) -> None:
        self.token = token

    def get(self) -> str:
        """Return the fixed token."""
        return self.token

    def refresh(self, stale: str | None = None) -> str:
        """Cannot refresh: the message waits until an operator sets a new token."""
        raise TransientError("Zalo access token rejected and no refresher configured")


class OAuthRefresher:
    """ZaloTokenProvider that refreshes through Zalo OAuth v4 and a TokenStore."""

    def __init__(
        self,
        app_id: str,
        app_secret: str,
        store: TokenStore,
        *,
        oauth_base: str = ZALO_OAUTH_BASE,
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        margin: float = 300.0,
    ) -> None:
        self.app_id, self.app_secret, self.store = app_id, app_secret, store
        self.url = oauth_base.rstrip("/") + "/v4/oa/access_token"
        self.client = client if client is not None else default_client()
        self.policy = policy if policy is not None else RetryPolicy()
        self.clock, self.margin = clock, margin
        self._owns_client = client is None
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the HTTP client if this refresher created it."""
        if self._owns_client:
            self.client.close()

    def _fresh(self, expires_at: float) -> bool:
        return self.clock() < expires_at - self.margin

    def get(self) -> str:
        """The stored access token, refreshed first if it is (nearly) expired."""
        access, _, expires_at = self.store.load()
        return access if self._fresh(expires_at) else self.refresh(stale=access)

    def refresh(self, stale: str | None = None) -> str:
        """Refresh and save the rotated pair; skip if another worker already did.

        Threads of this process queue on a lock; processes queue on the store's lock,
        held from the load to the save, so a refresh token is spent once.
        """
        with self._lock:
            return self.store.update(lambda current: self._renew(current, stale))[0]

    def refresh_if_due(self, ahead: float) -> bool:
        """Refresh when the access token expires within ``ahead`` seconds (scheduler)."""
        with self._lock:
            before = self.store.load()
            if self.clock() < before[2] - ahead:
                return False
            after = self.store.update(lambda current: self._renew(current, None, ahead))
            return after != before

    def _renew(
        self, current: Tokens, stale: str | None, ahead: float | None = None
    ) -> Tokens | None:
        """The next pair from Zalo OAuth, or None when ``current`` is already fresh."""
        access, refresh_token, expires_at = current
        if stale is not None and access != stale and self._fresh(expires_at):
            return None  # another worker refreshed while this one waited for the lock
        if ahead is not None and self.clock() < expires_at - ahead:
            return None
        form = {
            "refresh_token": refresh_token,
            "app_id": self.app_id,
            "grant_type": "refresh_token",
        }
        response = request_with_retry(
            self.client,
            "POST",
            self.url,
            policy=self.policy,
            data=form,
            headers={"secret_key": self.app_secret},
        )
        data = json_object(response, "Zalo OAuth")
        new_access = data.get("access_token")
        if not new_access:
            reason = data.get("error_description") or data.get("error_name") or data
            raise TransientError(
                f"Zalo token refresh failed: {reason}", code=str(data.get("error", "")) or None
            )
        expires_in = float(data.get("expires_in") or 3600)
        return (
            str(new_access),
            str(data.get("refresh_token") or refresh_token),
            self.clock() + expires_in,
        )
