"""HTTP plumbing shared by provider adapters: client factory, owning base class."""

from __future__ import annotations

import os
from typing import Any, ClassVar

import httpx

from channels.asyncclient import AsyncLeanClient
from channels.base import Channel
from channels.errors import TransientError
from channels.leanclient import LeanClient
from channels.retry import RetryPolicy, arequest_with_retry, request_with_retry

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0)
USER_AGENT = "marketing-automation-channels/0.1"


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")


def default_client(timeout: httpx.Timeout | float = DEFAULT_TIMEOUT) -> httpx.Client:
    """A client with sane timeouts, used when the caller injects none.

    A :class:`channels.leanclient.LeanClient` (per-thread keep-alive connections, plain
    requests sent without httpx's request pipeline), unless a proxy is configured in the
    environment: then an ``httpx.Client`` on httpx's own transport, which honours it.
    """
    headers = {"User-Agent": USER_AGENT}
    if any(os.environ.get(v) or os.environ.get(v.lower()) for v in PROXY_VARIABLES):
        return httpx.Client(timeout=timeout, headers=headers)
    return LeanClient(timeout=timeout, headers=headers)


def json_object(response: httpx.Response, provider: str) -> dict[str, Any]:
    """Decode a JSON object body; anything else is a transient provider fault."""
    try:
        data = response.json()
    except ValueError as exc:
        raise TransientError(
            f"{provider}: non-JSON answer (HTTP {response.status_code}): {response.text[:200]}"
        ) from exc
    if not isinstance(data, dict):
        raise TransientError(f"{provider}: unexpected JSON answer: {str(data)[:200]}")
    return data


def as_dict(value: Any) -> dict[str, Any]:
    """``value`` if it is a JSON object, else an empty dict."""
    return value if isinstance(value, dict) else {}


class HttpChannel(Channel):
    """Base for HTTP adapters: holds the (injected or default) client and policy."""

    #: True when the provider deduplicates on our idempotency key, so an
    #: ambiguous failure (read timeout, dropped connection) may be retried.
    idempotent: ClassVar[bool] = False

    def __init__(self, client: httpx.Client | None, policy: RetryPolicy | None) -> None:
        self._owns_client = client is None
        self.client = client if client is not None else default_client()
        self.policy = policy if policy is not None else RetryPolicy()
        #: The event-loop twin of the default client; None with an injected or proxied one.
        self.aclient = (
            AsyncLeanClient(timeout=self.client.timeout, headers=dict(self.client.headers))
            if self._owns_client and isinstance(self.client, LeanClient)
            else None
        )

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with the shared quick-retry policy."""
        return request_with_retry(
            self.client, method, url, policy=self.policy, idempotent=self.idempotent, **kwargs
        )

    async def arequest(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """:meth:`request` on the event loop (only when ``aclient`` is set)."""
        assert self.aclient is not None
        return await arequest_with_retry(
            self.aclient, method, url, policy=self.policy, idempotent=self.idempotent, **kwargs
        )

    def close(self) -> None:
        """Close the client if this adapter created it."""
        if self._owns_client:
            self.client.close()
        if self.aclient is not None:
            self.aclient.close()
