"""Quick in-adapter retries for HTTP providers (tenacity, from the first failure on).

Retried here, with short capped waits:

* connection failures (``ConnectError``, ``ConnectTimeout``, ``PoolTimeout``):
  the request never left, so a retry cannot duplicate a message;
* HTTP 429 and 5xx, honouring ``Retry-After`` when it fits in ``max_wait``;
* read timeouts and dropped connections *only* when the provider deduplicates
  on our idempotency key (``idempotent=True``, e.g. eSMS RequestId). For the
  others such a failure is ambiguous: it is raised at once as
  :class:`TransientError` so the outer (Dramatiq) retry decides.

When the quick retries are used up, or the provider asks for a longer pause
than ``max_wait``, a :class:`TransientError` carrying ``retry_after`` is raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx
from tenacity import AsyncRetrying, Retrying, retry_if_exception, stop_after_attempt

from channels.errors import TransientError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_SAFE_TO_RETRY = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How many quick attempts, and how long to wait between them (seconds)."""

    attempts: int = 3
    base_wait: float = 0.25
    max_wait: float = 2.5
    sleep: Callable[[float], None] = time.sleep

    def wait(self, attempt: int, exc: BaseException | None) -> float:
        """Seconds before the attempt after ``attempt`` (1-based) failed with ``exc``:
        Retry-After if given, else backoff."""
        if isinstance(exc, _Retryable) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_wait)
        return float(min(self.base_wait * 2 ** (attempt - 1), self.max_wait))

    def should_retry(self, exc: BaseException) -> bool:
        """Retry only retryable failures whose requested pause fits in max_wait."""
        if not isinstance(exc, _Retryable):
            return False
        return exc.retry_after is None or exc.retry_after <= self.max_wait


def retry_after_seconds(value: str | None) -> float | None:
    """Parse a Retry-After header (delta-seconds or HTTP-date) into seconds."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _failed(exc: httpx.TransportError, url: str, idempotent: bool) -> Exception:
    """What a transport failure becomes: retryable unless it may have been delivered to
    a provider that does not deduplicate."""
    if isinstance(exc, _SAFE_TO_RETRY):
        return _Retryable(f"cannot connect to {url}: {exc!r}")
    if idempotent:
        return _Retryable(f"no answer from {url}: {exc!r}")
    return TransientError(f"no answer from {url} (the request may have been delivered): {exc!r}")


def _checked(response: httpx.Response, url: str) -> httpx.Response:
    """``response``, or _Retryable for 429 / 5xx (with its Retry-After)."""
    if response.status_code in RETRY_STATUSES:
        reason = f"HTTP {response.status_code} from {url}: {response.text[:200]}"
        raise _Retryable(reason, retry_after_seconds(response.headers.get("Retry-After")))
    return response


def _attempt(
    client: httpx.Client, method: str, url: str, idempotent: bool, kwargs: dict[str, Any]
) -> httpx.Response:
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise _failed(exc, url, idempotent) from exc
    return _checked(response, url)


def _after_first(policy: RetryPolicy) -> dict[str, Any]:
    """tenacity's rules for the attempts after the first (which runs outside tenacity)."""
    return {
        "stop": stop_after_attempt(policy.attempts - 1),
        "wait": lambda state: policy.wait(
            state.attempt_number + 1, state.outcome.exception() if state.outcome else None
        ),
        "retry": retry_if_exception(policy.should_retry),
        "reraise": True,
    }


def request_with_retry(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    idempotent: bool = False,
    **kwargs: Any,
) -> httpx.Response:
    """Send a request with quick retries; raise TransientError when they run out.

    The first attempt runs outside tenacity: building its machinery for every call was
    ~2% of a worker's time on the pipeline bench, and almost every call succeeds at once.
    """
    try:
        return _attempt(client, method, url, idempotent, kwargs)
    except _Retryable as exc:
        if policy.attempts <= 1 or not policy.should_retry(exc):
            raise TransientError(exc.reason, retry_after=exc.retry_after) from exc
        policy.sleep(policy.wait(1, exc))
    retrying = Retrying(sleep=policy.sleep, **_after_first(policy))
    try:
        return retrying(_attempt, client, method, url, idempotent, kwargs)
    except _Retryable as exc:
        raise TransientError(exc.reason, retry_after=exc.retry_after) from exc


class AsyncClient(Protocol):
    """What :func:`arequest_with_retry` sends through (channels.asyncclient)."""

    def request(self, method: str, url: str, **kwargs: Any) -> Awaitable[httpx.Response]: ...


async def _aattempt(
    client: AsyncClient, method: str, url: str, idempotent: bool, kwargs: dict[str, Any]
) -> httpx.Response:
    try:
        response = await client.request(method, url, **kwargs)
    except httpx.TransportError as exc:
        raise _failed(exc, url, idempotent) from exc
    return _checked(response, url)


async def arequest_with_retry(
    client: AsyncClient,
    method: str,
    url: str,
    *,
    policy: RetryPolicy,
    idempotent: bool = False,
    **kwargs: Any,
) -> httpx.Response:
    """:func:`request_with_retry` on an event loop: the same attempts, waits and errors;
    the waits are ``asyncio.sleep`` (``policy.sleep`` is for threads)."""
    try:
        return await _aattempt(client, method, url, idempotent, kwargs)
    except _Retryable as exc:
        if policy.attempts <= 1 or not policy.should_retry(exc):
            raise TransientError(exc.reason, retry_after=exc.retry_after) from exc
        await _asleep(policy, policy.wait(1, exc))
    retrying = AsyncRetrying(sleep=lambda seconds: _asleep(policy, seconds), **_after_first(policy))
    try:
        return await retrying(_aattempt, client, method, url, idempotent, kwargs)
    except _Retryable as exc:
        raise TransientError(exc.reason, retry_after=exc.retry_after) from exc


async def _asleep(policy: RetryPolicy, seconds: float) -> None:
    """Wait on the loop; a policy with a non-default ``sleep`` (tests) is told the wait too."""
    if policy.sleep is not time.sleep:
        policy.sleep(seconds)
        return
    await asyncio.sleep(seconds)
