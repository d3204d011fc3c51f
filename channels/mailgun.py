"""Mailgun events webhook (e-mail results; e-mail itself goes out over SMTP).

The JSON body carries ``signature: {timestamp, token, signature}`` where signature is
hex HMAC-SHA256(signing key, timestamp + token), and ``event-data``:

=============================  ===============================================
event                          result
=============================  ===============================================
delivered, opened, clicked     the same word (clicked keeps its ``url``)
failed, severity permanent     bounced + hard-bounce suppression (scope all)
failed, severity temporary     temporary_failure (stored, no status change)
complained                     complained + complaint suppression + opt-out
unsubscribed                   unsubscribed (opt-out)
=============================  ===============================================

Freshness and replay: a block whose timestamp is more than ``max_age`` seconds away from
now is refused (401, ``stale_signature``); the caller spends each token once (see
:func:`fingerprint`), so a captured block cannot be replayed with other event data.

Our message is found by the ``message_id`` user variable, then by our Message-ID
``<msg-<id>@...>``, then by the provider message id.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

from channels.callback import (
    CallbackRejected,
    CallbackRequest,
    CallbackResult,
    from_seconds,
    json_body,
    same,
    unauthorized,
)
from channels.httpchannel import as_dict
from channels.mime import OUR_MESSAGE_ID


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    """Mailgun's webhook signature: hex HMAC-SHA256(signing key, timestamp + token)."""
    message = (timestamp + token).encode()
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def verify_mailgun(signing_key: str, timestamp: str, token: str, signature: str) -> bool:
    """True when the body's signature block was made with the signing key."""
    return same(mailgun_signature(signing_key, timestamp, token), signature.lower())


def fingerprint(data: dict[str, Any]) -> str:
    """SHA-256 of the event data: a token may come back only with this same event."""
    canonical = json.dumps(data.get("event-data"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_fresh(timestamp: str, max_age: float, clock: Callable[[], float] = time.time) -> None:
    """401 unless the signed timestamp is within ``max_age`` seconds of now."""
    try:
        age = abs(clock() - float(timestamp))
    except ValueError:
        raise unauthorized("signature.timestamp must be epoch seconds", "stale_signature") from None
    if age > max_age:
        raise unauthorized(
            f"signature.timestamp is {int(age)} s away from now (more than {int(max_age)} s: "
            "MAILGUN_MAX_AGE_SECONDS); Mailgun signs each delivery afresh",
            "stale_signature",
        )


def read_callback(
    request: CallbackRequest,
    signing_key: str,
    max_age: float = 300.0,
    clock: Callable[[], float] = time.time,
) -> list[CallbackResult]:
    """Verify the body's signature block and its freshness, then parse the event.

    Raises CallbackRejected (401) on a missing, wrong or stale signature.
    """
    try:
        data = json_body(request.body)
    except CallbackRejected as exc:
        raise unauthorized(f"no signature block: {exc.message}", "missing_signature") from None
    block = data.get("signature")
    if not isinstance(block, dict) or not all(
        isinstance(block.get(k), str | int) for k in ("timestamp", "token", "signature")
    ):
        raise unauthorized(
            "signature block {timestamp, token, signature} is required", "missing_signature"
        )
    if not verify_mailgun(
        signing_key, str(block["timestamp"]), str(block["token"]), str(block["signature"])
    ):
        raise unauthorized("signature must be hex HMAC-SHA256(signing key, timestamp+token)")
    check_fresh(str(block["timestamp"]), max_age, clock)
    if not isinstance(data.get("event-data"), dict):
        raise CallbackRejected(400, "invalid_payload", "field event-data (object) is required")
    return parse_callback(data)


def _lookup(event: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(our row ids, provider message ids) to find the event's message by, in order."""
    ours: list[str] = []
    variables = as_dict(event.get("user-variables"))
    if variables.get("message_id"):
        ours.append(str(variables["message_id"]))
    headers = as_dict(as_dict(event.get("message")).get("headers"))
    header_id = str(headers.get("message-id", ""))
    match = OUR_MESSAGE_ID.match(header_id)
    if match:
        return (*ours, match.group(1)), ()
    if not header_id:
        return tuple(ours), ()
    return tuple(ours), (header_id, f"<{header_id.strip('<>')}>")


def parse_callback(data: dict[str, Any]) -> list[CallbackResult]:
    """The result of one verified event (see the module table)."""
    event: dict[str, Any] = data["event-data"]
    name = str(event.get("event", "unknown"))
    kind = name
    payload = dict(event)
    suppress: tuple[str, str] | None = None
    if name == "failed":
        permanent = event.get("severity") == "permanent"
        kind = "bounced" if permanent else "temporary_failure"
        status = event.get("delivery-status")
        detail = status.get("message") if isinstance(status, dict) else None
        payload["reason"] = f"{event.get('reason', name)}: {detail or ''}".strip(": ")
        suppress = ("hard_bounce", "all") if permanent else None
    elif name == "complained":
        suppress = ("complaint", "marketing")
    unsubscribe = {"complained": "mailgun_complaint", "unsubscribed": "mailgun"}.get(name)
    ours, theirs = _lookup(event)
    block = as_dict(data.get("signature"))
    return [
        CallbackResult(
            kind,
            str(event.get("id") or block.get("token")),
            payload,
            message_ids=ours,
            provider_ids=theirs,
            at=from_seconds(event.get("timestamp")),
            properties={"url": event["url"]} if name == "clicked" and event.get("url") else {},
            suppress=suppress,
            unsubscribe=unsubscribe,
            address=str(event.get("recipient") or "") or None,
            what=f"event {event.get('id')}",
        )
    ]
