"""Provider callbacks in neutral words: what a provider reported, parsed, not yet applied.

Each provider module (``channels/<provider>.py``) verifies its own signature and turns a
callback into a list of :class:`CallbackResult`; the domain finds our message(s) and
records them. Nothing here touches a database.

Which message a result is about, tried in this order:

- ``message_ids``: our outbox row ids (RequestId, tracking_id, user variables); the
  first one found wins;
- ``provider_ids``: the provider's message ids; the first found wins, or every one
  found when ``every_id`` is set (one Messenger delivery names several mids);
- ``user_id`` + ``channels``: a person (Zalo user id, Messenger PSID). With
  ``sent_before``: all their messages on those channels sent at or before it; with
  kind ``replied``: the person wrote to us (the domain opens the reply window and marks
  the latest message sent to them replied).
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: A result that is about nothing we track (counted as ignored, never logged).
IGNORED = "ignored"
#: ``event_id`` placeholder for our message id (results that may match several messages).
MESSAGE_ID = "{message}"


@dataclass(frozen=True)
class CallbackResult:
    """One result a provider reported about a message or a person (see module docstring)."""

    kind: str
    event_id: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    message_ids: tuple[str, ...] = ()
    provider_ids: tuple[str, ...] = ()
    every_id: bool = False
    user_id: str | None = None
    channels: tuple[str, ...] = ()
    sent_before: datetime | None = None
    at: datetime | None = None
    properties: dict[str, Any] = field(default_factory=dict)
    suppress: tuple[str, str] | None = None  # (reason, scope) for the recipient address
    unsubscribe: str | None = None  # opt-out source: the recipient unsubscribed
    address: str | None = None  # recipient address when the provider names it
    what: str = ""  # how the message was looked for, for the "ignored" log line


@dataclass(frozen=True)
class CallbackRequest:
    """An HTTP callback as the web layer received it (headers keyed in lower case)."""

    url: str  # the public URL the provider called (PUBLIC_BASE_URL + path + query)
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes = b""
    path_params: dict[str, str] = field(default_factory=dict)


class CallbackRejected(Exception):
    """A callback that must not be applied: HTTP status, short code, message naming why."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def unauthorized(message: str, error: str = "invalid_signature") -> CallbackRejected:
    """A 401 rejection (missing or wrong signature)."""
    return CallbackRejected(401, error, message)


def required(value: str | None, name: str) -> str:
    """``value``, or a 401 naming the setting that must be set to verify callbacks."""
    if not value:
        raise unauthorized(f"{name} is not set: callbacks cannot be verified", "not_configured")
    return value


def same(expected: str, given: str) -> bool:
    """Constant-time comparison of a computed signature with the one given."""
    return hmac.compare_digest(expected.encode(), given.strip().encode())


def json_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or a 400 naming the problem."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CallbackRejected(400, "invalid_json", f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CallbackRejected(400, "invalid_json", "body must be a JSON object")
    return data


def header(request: CallbackRequest, name: str) -> str:
    """A required signature header, or a 401 naming it."""
    value = request.headers.get(name.lower())
    if not value:
        raise unauthorized(f"header {name} is required", "missing_signature")
    return value


def from_millis(value: Any) -> datetime | None:
    """A UTC datetime from epoch milliseconds (int or digit string), else None."""
    try:
        return datetime.fromtimestamp(int(str(value)) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def from_seconds(value: Any) -> datetime | None:
    """A UTC datetime from epoch seconds (float allowed), else None."""
    try:
        return datetime.fromtimestamp(float(str(value)), tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None
