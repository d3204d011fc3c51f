"""Twilio Programmable Messaging (``POST /2010-04-01/Accounts/{sid}/Messages.json``).

Twilio has no idempotency key for sends, so ambiguous failures (read timeout,
dropped connection) are raised as TransientError without a quick retry.

==========================================  ======================
answer                                      result
==========================================  ======================
201 ``{"sid": ...}``                        SendResult(sid)
400 code 21211 invalid To                   PermanentError
400 code 21610 recipient unsubscribed       PermanentError
400 code 21614 To is not a mobile number    PermanentError
400 code 21408 / 21612 cannot route to To   PermanentError
other 400 / 422 request rejected            PermanentError
401 / 403 / 404 credentials, account        TransientError (config)
429, 5xx (after quick retries)              TransientError
==========================================  ======================

Status callbacks (form POST, ``X-Twilio-Signature`` = base64 HMAC-SHA1(auth token,
full URL + sorted name+value pairs)) parse into CallbackResult: delivered, sent,
undelivered/failed (bounced for a number that can never receive SMS), read; ErrorCode
21610 means the recipient opted out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

import httpx

from channels.base import OutboundMessage, SendResult
from channels.callback import (
    CallbackRejected,
    CallbackRequest,
    CallbackResult,
    header,
    same,
    unauthorized,
)
from channels.errors import PermanentError, TransientError
from channels.httpchannel import HttpChannel, json_object
from channels.retry import RetryPolicy
from channels.segments import count_segments

TWILIO_API_BASE = "https://api.twilio.com"
PERMANENT_CODES = {21211, 21408, 21610, 21612, 21614}
CONFIG_STATUSES = {401, 403, 404}
CALLBACK_STATUS = {
    "sent": "sent",
    "delivered": "delivered",
    "undelivered": "failed",
    "failed": "failed",
    "read": "read",
}
#: Error codes that mean the number can never receive SMS from us.
BAD_NUMBER = frozenset({"21211", "21614", "30005", "30006"})
OPTED_OUT = "21610"


class TwilioChannel(HttpChannel):
    """Send SMS through Twilio from a number or a Messaging Service (``MG...``)."""

    name = "sms"

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        from_: str,
        *,
        api_base: str = TWILIO_API_BASE,
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(client, policy)
        self.auth = httpx.BasicAuth(account_sid, auth_token)
        self.from_ = from_
        self.url = f"{api_base.rstrip('/')}/2010-04-01/Accounts/{account_sid}/Messages.json"

    def form(self, msg: OutboundMessage) -> dict[str, str]:
        """The form fields Twilio expects for ``msg``."""
        sender = "MessagingServiceSid" if self.from_.startswith("MG") else "From"
        fields = {"To": msg.to, sender: self.from_, "Body": msg.text}
        if msg.callback_url:
            fields["StatusCallback"] = msg.callback_url
        return fields

    def send(self, msg: OutboundMessage) -> SendResult:
        """Send one SMS; see the module table for the outcome mapping."""
        response = self.request("POST", self.url, data=self.form(msg), auth=self.auth)
        data = json_object(response, "Twilio")
        if response.status_code in (200, 201) and data.get("sid"):
            detail = {"status": data.get("status"), "num_segments": data.get("num_segments")}
            return SendResult(str(data["sid"]), count_segments(msg.text).segments, detail)
        code = data.get("code")
        reason = f"Twilio {response.status_code}/{code}: {data.get('message', '')}"
        code_str = None if code is None else str(code)
        if code in PERMANENT_CODES:
            raise PermanentError(reason, code=code_str)
        if response.status_code in CONFIG_STATUSES or response.status_code < 400:
            raise TransientError(reason, code=code_str)
        raise PermanentError(reason, code=code_str)


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's request signature for a POST to ``url`` with form ``params``."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    message = url + "".join(
        name + value for name in sorted(grouped) for value in sorted(grouped[name])
    )
    digest = hmac.new(auth_token.encode(), message.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_twilio(
    auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str
) -> bool:
    """True when ``signature`` is Twilio's signature of this request."""
    return same(twilio_signature(auth_token, url, list(params)), signature)


def read_callback(request: CallbackRequest, auth_token: str) -> list[CallbackResult]:
    """Verify a status callback (CallbackRejected otherwise) and parse it."""
    signature = header(request, "X-Twilio-Signature")
    try:
        params = parse_qsl(request.body.decode(), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise CallbackRejected(400, "invalid_form", "body is not a UTF-8 form") from None
    if not verify_twilio(auth_token, request.url, params, signature):
        raise unauthorized(
            f"X-Twilio-Signature does not match for {request.url} (check PUBLIC_BASE_URL)"
        )
    return parse_callback(dict(params), request.query.get("message_id"))


def parse_callback(params: dict[str, str], message_id: str | None) -> list[CallbackResult]:
    """A status callback's result (``message_id`` from our StatusCallback URL, if any)."""
    sid = params.get("MessageSid") or params.get("SmsSid")
    status = params.get("MessageStatus") or params.get("SmsStatus") or "unknown"
    code = params.get("ErrorCode", "")
    kind = CALLBACK_STATUS.get(status, status)
    if kind == "failed" and code in BAD_NUMBER:
        kind = "bounced"
    payload: dict[str, Any] = dict(params)
    if code:
        payload["reason"] = f"Twilio {status} ErrorCode {code}"
    return [
        CallbackResult(
            kind,
            f"{sid}:{status}",
            payload,
            message_ids=(message_id,) if message_id is not None else (),
            provider_ids=(sid,) if sid else (),
            suppress=("hard_bounce", "all") if kind == "bounced" and code != OPTED_OUT else None,
            unsubscribe="twilio" if code == OPTED_OUT else None,
            what=f"MessageSid {sid}",
        )
    ]
