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
"""

from __future__ import annotations

import httpx

from channels.base import OutboundMessage, SendResult
from channels.errors import PermanentError, TransientError
from channels.httpchannel import HttpChannel, json_object
from channels.retry import RetryPolicy
from channels.segments import count_segments

TWILIO_API_BASE = "https://api.twilio.com"
PERMANENT_CODES = {21211, 21408, 21610, 21612, 21614}
CONFIG_STATUSES = {401, 403, 404}


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
