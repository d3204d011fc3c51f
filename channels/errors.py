"""Exceptions raised by channel adapters.

The tree (catch the narrowest class you can act on)::

    ChannelError            the adapter could not send; ``.reason`` names why
     ├── TransientError     try again later; ``.retry_after`` (seconds) when the
     │                      provider said how long; account/config problems too,
     │                      so messages wait instead of falling back
     │   └── QuotaExhausted the account's daily quota is spent: pause the whole
     │                      channel until local midnight in ``.timezone``
     └── PermanentError     will never succeed for this message or address:
                            mark it failed and fall back to another channel

``.code`` carries the provider's own error code (as a string) when there is one.
"""

from __future__ import annotations


class ChannelError(Exception):
    """Base class: sending failed; ``reason`` is a human-readable explanation."""

    def __init__(self, reason: str, *, code: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class TransientError(ChannelError):
    """Retry later (network, rate limit, provider outage, account configuration)."""

    def __init__(
        self, reason: str, *, retry_after: float | None = None, code: str | None = None
    ) -> None:
        super().__init__(reason, code=code)
        self.retry_after = retry_after


class QuotaExhausted(TransientError):
    """The provider's daily quota is reached: no message on this channel goes until reset."""

    def __init__(self, reason: str, *, timezone: str, code: str | None = None) -> None:
        super().__init__(reason, code=code)
        self.timezone = timezone  # the quota resets at midnight here


class PermanentError(ChannelError):
    """Permanent for this message or address: do not retry, use the fallback."""
