"""SendGrid Event Webhook (e-mail results), signed with ECDSA ("Signed Event Webhook").

The body is a JSON array of events. ``X-Twilio-Email-Event-Webhook-Signature`` is a
base64 ASN.1 ECDSA signature over SHA-256(``X-Twilio-Email-Event-Webhook-Timestamp`` +
raw body), checked with the account's verification key (base64 DER public key, as
SendGrid shows it). A replayed body is the same events again, deduplicated by
``sg_event_id``.

=====================================  =============================================
event                                  result
=====================================  =============================================
delivered, open, click                 delivered, opened, clicked (click keeps url)
bounce (type bounce or unset)          bounced + hard-bounce suppression (scope all)
bounce type blocked, deferred          temporary_failure (stored, no status change)
dropped                                failed (+ hard-bounce suppression when the
                                       reason is "Bounced Address" or "Invalid")
spamreport                             complained + complaint suppression + opt-out
unsubscribe, group_unsubscribe         unsubscribed (opt-out)
processed, group_resubscribe, other    ignored
=====================================  =============================================

Our message is found by the ``message_id`` custom argument, then by our Message-ID in
``smtp-id`` (``<msg-<id>@...>``), then by ``sg_message_id``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_der_public_key

from channels.callback import (
    IGNORED,
    CallbackRejected,
    CallbackRequest,
    CallbackResult,
    from_seconds,
    header,
    unauthorized,
)
from channels.mime import OUR_MESSAGE_ID

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"
KINDS = {
    "delivered": "delivered",
    "open": "opened",
    "click": "clicked",
    "bounce": "bounced",
    "deferred": "temporary_failure",
    "dropped": "failed",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
}
HARD_DROPS = ("bounced address", "invalid")


def public_key(value: str) -> ec.EllipticCurvePublicKey:
    """The verification key from its base64 DER text; ValueError naming the setting."""
    try:
        key = load_der_public_key(base64.b64decode(value.strip(), validate=True))
    except (ValueError, binascii.Error):
        raise ValueError(
            "SENDGRID_WEBHOOK_PUBLIC_KEY must be the base64 verification key SendGrid shows"
        ) from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("SENDGRID_WEBHOOK_PUBLIC_KEY is not an ECDSA public key")
    return key


def verify_sendgrid(key: ec.EllipticCurvePublicKey, timestamp: str, body: bytes, sig: str) -> bool:
    """True when ``sig`` (base64 ASN.1) signs timestamp + raw body under ``key``."""
    try:
        key.verify(base64.b64decode(sig), timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True


def read_callback(request: CallbackRequest, key_text: str) -> list[CallbackResult]:
    """Verify the signed batch (CallbackRejected otherwise) and parse every event."""
    signature = header(request, SIGNATURE_HEADER)
    timestamp = header(request, TIMESTAMP_HEADER)
    try:
        key = public_key(key_text)
    except ValueError as exc:
        raise unauthorized(str(exc), "not_configured") from None
    if not verify_sendgrid(key, timestamp, request.body, signature):
        raise unauthorized(f"{SIGNATURE_HEADER} must be ECDSA over timestamp + raw body")
    try:
        events = json.loads(request.body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CallbackRejected(400, "invalid_json", f"body is not JSON: {exc}") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise CallbackRejected(400, "invalid_payload", "body must be a JSON array of events")
    return [parse_event(event) for event in events]


def _lookup(event: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(our row ids, provider message ids) to find the event's message by, in order."""
    ours = [str(event["message_id"])] if event.get("message_id") else []
    match = OUR_MESSAGE_ID.match(str(event.get("smtp-id") or ""))
    if match:
        ours.append(match.group(1))
    theirs = str(event.get("sg_message_id") or "")
    return tuple(ours), (theirs, theirs.split(".filter")[0]) if theirs else ()


def parse_event(event: dict[str, Any]) -> CallbackResult:
    """The result of one event (see the module table)."""
    name = str(event.get("event", ""))
    kind = KINDS.get(name)
    if kind is None:
        return CallbackResult(IGNORED)
    reason = str(event.get("reason") or event.get("response") or "")
    suppress: tuple[str, str] | None = None
    if name == "bounce" and event.get("type") == "blocked":
        kind = "temporary_failure"
    elif name == "bounce" or (name == "dropped" and reason.lower().startswith(HARD_DROPS)):
        suppress = ("hard_bounce", "all")
    elif name == "spamreport":
        suppress = ("complaint", "marketing")
    payload = dict(event)
    if reason:
        payload["reason"] = f"{reason} {event.get('status') or ''}".strip()
    ours, theirs = _lookup(event)
    return CallbackResult(
        kind,
        f"{event.get('sg_event_id') or event.get('sg_message_id')}:{name}",
        payload,
        message_ids=ours,
        provider_ids=theirs,
        at=from_seconds(event.get("timestamp")),
        properties={"url": event["url"]} if name == "click" and event.get("url") else {},
        suppress=suppress,
        unsubscribe={"spamreport": "sendgrid_complaint"}.get(name, "sendgrid")
        if name in ("spamreport", "unsubscribe", "group_unsubscribe")
        else None,
        address=str(event.get("email") or "") or None,
        what=f"event {event.get('sg_event_id')} smtp-id {event.get('smtp-id')}",
    )
