"""Facebook Messenger Send API (``POST {graph_base}/me/messages``).

Window rules (Messenger policy): inside the 24-hour standard messaging window
(``msg.window_open is True``) automated messages go as ``UPDATE``. Outside it
(or when the window state is unknown) only transactional messages tagged
``POST_PURCHASE_UPDATE``, ``ACCOUNT_UPDATE`` or ``CONFIRMED_EVENT_UPDATE`` may
go, as ``MESSAGE_TAG``; anything else is refused with PermanentError before
any call to Graph.

Graph errors ``{"error": {"code", "error_subcode", "message"}}`` (Messenger
"Common Error Codes" page; subcodes for 200 are less certain):

=============================================  ==============================
code (subcode)                                 result
=============================================  ==============================
1, 2 temporary / unexpected, 1200 temporary    TransientError
4, 17, 32, 613, 80006 rate limits              TransientError(retry_after=60)
10 (2018278) sent outside allowed window       PermanentError
10 (2534022) outside the allowed window        PermanentError (never retried)
100 (2018001) no matching user                 PermanentError
551 person not available                       PermanentError
200 (2018028 ...) cannot message this user     PermanentError
190 token invalid, other 10 / 200 permission   TransientError (config)
other 4xx                                      PermanentError
5xx (after quick retries)                      TransientError
=============================================  ==============================

Webhooks: ``GET`` subscription check (echo ``hub.challenge`` when ``hub.verify_token``
matches) and ``POST`` events signed ``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app
secret, raw body)>``, parsed into CallbackResult: delivery (mids, or every message up to
the watermark), read (watermark), inbound message (replied; opens the 24 h window).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import httpx

from channels.base import OutboundMessage, SendResult
from channels.callback import (
    IGNORED,
    MESSAGE_ID,
    CallbackRejected,
    CallbackRequest,
    CallbackResult,
    from_millis,
    header,
    json_body,
    same,
    unauthorized,
)
from channels.errors import ChannelError, PermanentError, TransientError
from channels.httpchannel import HttpChannel, as_dict, json_object
from channels.retry import RetryPolicy

GRAPH_BASE = "https://graph.facebook.com/v21.0"
ALLOWED_TAGS = frozenset({"POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE"})
TRANSIENT_CODES = frozenset({1, 2, 1200})
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80006})
PERMANENT_CODES = frozenset({551})
PERMANENT_PAIRS = frozenset({(10, 2018278), (10, 2534022), (100, 2018001), (200, 2018028)})
CONFIG_CODES = frozenset({10, 190, 200})
RATE_LIMIT_PAUSE = 60.0


def messaging_fields(msg: OutboundMessage) -> dict[str, str]:
    """``messaging_type`` (and ``tag``) for ``msg``, or PermanentError by policy."""
    if msg.window_open:
        return {"messaging_type": "UPDATE"}
    if msg.purpose == "marketing":
        raise PermanentError(
            "outside the 24-hour window: marketing messages need an open window",
            code="outside_window",
        )
    if msg.message_tag not in ALLOWED_TAGS:
        raise PermanentError(
            f"outside the 24-hour window: tag {msg.message_tag!r} is not one of "
            f"{sorted(ALLOWED_TAGS)}",
            code="outside_window",
        )
    return {"messaging_type": "MESSAGE_TAG", "tag": str(msg.message_tag)}


def message_payload(msg: OutboundMessage) -> dict[str, Any]:
    """Plain text, or a button template when ``msg.buttons`` is set."""
    if not msg.buttons:
        return {"text": msg.text}
    template = {"template_type": "button", "text": msg.text, "buttons": list(msg.buttons)}
    return {"attachment": {"type": "template", "payload": template}}


def graph_error(status: int, data: dict[str, Any]) -> ChannelError:
    """Map a Graph error answer to TransientError / PermanentError."""
    err = as_dict(data.get("error"))
    if not err:
        return TransientError(f"Graph {status}: unexpected answer {str(data)[:200]}")
    code, sub = err.get("code"), err.get("error_subcode")
    reason = f"Graph {status} code {code}/{sub}: {err.get('message', '')}"
    tag = None if code is None else f"{code}/{sub}" if sub else str(code)
    if code in RATE_LIMIT_CODES:
        return TransientError(reason, retry_after=RATE_LIMIT_PAUSE, code=tag)
    if code in TRANSIENT_CODES or status >= 500:
        return TransientError(reason, code=tag)
    if code in PERMANENT_CODES or (code, sub) in PERMANENT_PAIRS:
        return PermanentError(reason, code=tag)
    if code in CONFIG_CODES:
        return TransientError(reason, code=tag)
    return PermanentError(reason, code=tag)


class MessengerChannel(HttpChannel):
    """Send Messenger messages as a Page to a page-scoped id (PSID)."""

    name = "messenger"

    def __init__(
        self,
        page_token: str,
        *,
        graph_base: str = GRAPH_BASE,
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(client, policy)
        self.page_token = page_token
        self.url = graph_base.rstrip("/") + "/me/messages"

    def body(self, msg: OutboundMessage) -> dict[str, Any]:
        """The Send API body; raises PermanentError if policy forbids sending."""
        body: dict[str, Any] = {"recipient": {"id": msg.to}, **messaging_fields(msg)}
        body["message"] = message_payload(msg)
        return body

    def send(self, msg: OutboundMessage) -> SendResult:
        """Send one message; window rules are checked before calling Graph."""
        body = self.body(msg)
        response = self.request(
            "POST", self.url, json=body, params={"access_token": self.page_token}
        )
        data = json_object(response, "Graph")
        if response.is_success and data.get("message_id"):
            return SendResult(
                str(data["message_id"]), detail={"recipient_id": data.get("recipient_id")}
            )
        raise graph_error(response.status_code, data)


def facebook_signature(app_secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value: ``sha256=`` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_facebook(app_secret: str, body: bytes, header: str) -> bool:
    """True when X-Hub-Signature-256 is the HMAC of the raw body under the app secret."""
    return same(facebook_signature(app_secret, body), header.lower())


def subscription_challenge(request: CallbackRequest, verify_token: str | None) -> str:
    """``hub.challenge`` to echo when ``hub.verify_token`` matches; 403 otherwise."""
    query = request.query
    token = query.get("hub.verify_token", "")
    if (
        query.get("hub.mode") != "subscribe"
        or not verify_token
        or not hmac.compare_digest(verify_token.encode(), token.encode())
    ):
        raise CallbackRejected(403, "verification_failed", "hub.verify_token mismatch")
    return query.get("hub.challenge", "")


def read_callback(request: CallbackRequest, app_secret: str) -> list[CallbackResult]:
    """Verify a signed webhook POST (CallbackRejected otherwise) and parse it."""
    signature = header(request, "X-Hub-Signature-256")
    if not verify_facebook(app_secret, request.body, signature):
        raise unauthorized("X-Hub-Signature-256 must be sha256=<hex HMAC of the raw body>")
    return parse_callback(json_body(request.body))


def parse_callback(data: dict[str, Any]) -> list[CallbackResult]:
    """The results of every ``messaging`` item of every entry."""
    entries = data.get("entry") if isinstance(data.get("entry"), list) else []
    assert isinstance(entries, list)
    results = []
    for entry in entries:
        items = entry.get("messaging") if isinstance(entry, dict) else None
        for item in items if isinstance(items, list) else []:
            if isinstance(item, dict):
                results.append(_item(item))
    return results


def _item(item: dict[str, Any]) -> CallbackResult:
    psid = str(as_dict(item.get("sender")).get("id", ""))
    when = from_millis(item.get("timestamp"))
    delivery, read, inbound = item.get("delivery"), item.get("read"), item.get("message")
    if isinstance(delivery, dict):
        mids = tuple(str(m) for m in delivery.get("mids") or [] if m)
        watermark = from_millis(delivery.get("watermark"))
        return CallbackResult(
            "delivered",
            f"delivered:{MESSAGE_ID}",
            item,
            provider_ids=mids,
            every_id=True,
            user_id=psid if not mids and watermark is not None else None,
            channels=("messenger",),
            sent_before=watermark if not mids else None,
            at=watermark or when,
            what=f"delivery {list(mids) or watermark}",
        )
    if isinstance(read, dict):
        watermark = from_millis(read.get("watermark"))
        return CallbackResult(
            "read",
            f"read:{MESSAGE_ID}",
            item,
            user_id=psid if watermark else None,
            channels=("messenger",),
            sent_before=watermark,
            at=watermark,
            what=f"read by {psid!r}",
        )
    if isinstance(inbound, dict) and not inbound.get("is_echo"):
        mid = str(inbound.get("mid") or f"{psid}:{item.get('timestamp')}")
        return CallbackResult(
            "replied", f"reply:{mid}", item, user_id=psid, channels=("messenger",), at=when
        )
    return CallbackResult(IGNORED)
