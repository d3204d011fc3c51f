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
100 (2018001) no matching user                 PermanentError
551 person not available                       PermanentError
200 (2018028 ...) cannot message this user     PermanentError
190 token invalid, other 10 / 200 permission   TransientError (config)
other 4xx                                      PermanentError
5xx (after quick retries)                      TransientError
=============================================  ==============================
"""

from __future__ import annotations

from typing import Any

import httpx

from channels.base import OutboundMessage, SendResult
from channels.errors import ChannelError, PermanentError, TransientError
from channels.httpchannel import HttpChannel, as_dict, json_object
from channels.retry import RetryPolicy

GRAPH_BASE = "https://graph.facebook.com/v21.0"
ALLOWED_TAGS = frozenset({"POST_PURCHASE_UPDATE", "ACCOUNT_UPDATE", "CONFIRMED_EVENT_UPDATE"})
TRANSIENT_CODES = frozenset({1, 2, 1200})
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80006})
PERMANENT_CODES = frozenset({551})
PERMANENT_PAIRS = frozenset({(10, 2018278), (100, 2018001), (200, 2018028)})
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
