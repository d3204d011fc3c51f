"""eSMS.vn brandname SMS: customer care per message, advertising per pool.

Customer care (SmsType 2, ``SendMultipleMessage_V4_post_json``): one request per
message; the outbox row id goes out as ``RequestId``. Advertising (SmsType 1,
``SendMultipleSMSBrandname_json``): one ``Content`` for a ``Phones`` array of 30 to
5,000 numbers (code 107 below 30); the pool id goes out as ``RequestId`` (shown in
eSMS's Vietnamese page for this endpoint; the English page omits it but documents 124
for it). eSMS answers 124 to a repeated RequestId, so a resend after an ambiguous
failure cannot double-send, and the adapter may retry read timeouts (``idempotent``).

=========  ====================================  ==========================
CodeResult  meaning                               result
=========  ====================================  ==========================
100        accepted                              SendResult(SMSID)
107        advertising request below 30 phones   PermanentError (this pool)
124        duplicate RequestId (already sent)    SendResult(already_sent)
99         number blocked at eSMS                PermanentError
108        phone number format invalid           PermanentError
146        content matches no registered         PermanentError (this text)
           customer-care template
177        carrier not registered for brandname  PermanentError (this number)
101        wrong ApiKey / SecretKey              TransientError (config)
102, 103   no price list / balance too low       TransientError (account)
104        brandname not registered              TransientError (config)
118, 140   SMS type unsupported / IP whitelist   TransientError (config)
other      undocumented                          TransientError
=========  ====================================  ==========================

Account and configuration problems are transient on purpose: the messages
wait for an operator to fix the account instead of falling back en masse.
Codes from eSMS's "Table of error codes" page (developers.esms.vn).

Delivery reports come as an unsigned HTTP GET to our CallbackUrl (protect it with a
per-message token); SendStatus 5 with SendSuccess > 0 is delivered, 5 with SendFailed
> 0 or 4 is failed, 5 alone is sent, anything else (7: waiting for the carrier) pending.
An advertising (TypeId 1) report names no phone: it is an aggregate per SMSID, so it
applies to every row of the pool; a report naming ``phonenumber`` applies to that row.
"""

from __future__ import annotations

from typing import Any

import httpx

from channels.base import OutboundMessage, SendResult
from channels.callback import CallbackResult
from channels.errors import PermanentError, TransientError
from channels.httpchannel import HttpChannel, json_object
from channels.phone import vn_national
from channels.retry import RetryPolicy
from channels.segments import count_segments

ESMS_API_BASE = "https://rest.esms.vn/MainService.svc/json"
SEND_PATH = "/SendMultipleMessage_V4_post_json/"
AD_PATH = "/SendMultipleSMSBrandname_json/"
AD_MIN_PHONES, AD_MAX_PHONES = 30, 5000

PERMANENT = {
    "99": "number blocked",
    "107": "an advertising request needs at least 30 numbers",
    "108": "invalid phone number",
    "146": "no registered template matches the content",
    "177": "carrier not registered for this brandname",
}
TRANSIENT = {
    "101": "wrong ApiKey/SecretKey",
    "102": "no price list on the account",
    "103": "balance too low",
    "104": "brandname not registered",
    "118": "SMS type not supported",
    "140": "server IP not whitelisted",
}


class EsmsChannel(HttpChannel):
    """Send SMS through eSMS.vn with a registered brandname."""

    name = "sms"
    idempotent = True

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        brandname: str,
        *,
        api_base: str = ESMS_API_BASE,
        sms_type: str = "2",
        sandbox: bool = False,
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(client, policy)
        self.api_key, self.secret_key, self.brandname = api_key, secret_key, brandname
        self.url = api_base.rstrip("/") + SEND_PATH
        self.ad_url = api_base.rstrip("/") + AD_PATH
        self.sms_type, self.sandbox = sms_type, sandbox

    def payload(self, msg: OutboundMessage) -> dict[str, str]:
        """The JSON body eSMS expects for ``msg``."""
        body = {
            "ApiKey": self.api_key,
            "SecretKey": self.secret_key,
            "Phone": vn_national(msg.to),
            "Content": msg.text,
            "Brandname": self.brandname,
            "SmsType": self.sms_type,
            "IsUnicode": "0" if count_segments(msg.text).encoding == "gsm7" else "1",
            "Sandbox": "1" if self.sandbox else "0",
            "RequestId": str(msg.id),
        }
        if msg.callback_url:
            body["CallbackUrl"] = msg.callback_url
        return body

    def send(self, msg: OutboundMessage) -> SendResult:
        """Send one SMS; see the module table for the outcome mapping."""
        response = self.request("POST", self.url, json=self.payload(msg))
        data = json_object(response, "eSMS")
        return self._result(data, count_segments(msg.text).segments)

    def advertise(
        self, content: str, phones: list[str], request_id: str, callback_url: str | None = None
    ) -> SendResult:
        """Send one advertising SMS (SmsType 1) to 30-5,000 E.164 ``phones`` at once."""
        body = {
            "ApiKey": self.api_key,
            "SecretKey": self.secret_key,
            "Brandname": self.brandname,
            "Content": content,
            "Phones": [vn_national(p) for p in phones],
            "SmsType": "1",
            "IsUnicode": "0" if count_segments(content).encoding == "gsm7" else "1",
            "Sandbox": "1" if self.sandbox else "0",
            "RequestId": request_id,
        }
        if callback_url:
            body["CallbackUrl"] = callback_url
        response = self.request("POST", self.ad_url, json=body)
        return self._result(json_object(response, "eSMS"), count_segments(content).segments)

    @staticmethod
    def _result(data: dict[str, Any], segments: int) -> SendResult:
        code = str(data.get("CodeResult", ""))
        detail = {"code": code, "error": data.get("ErrorMessage")}
        if code == "100":
            return SendResult(str(data.get("SMSID") or "") or None, segments, detail)
        if code == "124":
            return SendResult(None, segments, detail, already_sent=True)
        message = f"eSMS {code}: {data.get('ErrorMessage') or PERMANENT.get(code) or ''}"
        if code in PERMANENT:
            raise PermanentError(message, code=code)
        hint = TRANSIENT.get(code, "undocumented result")
        raise TransientError(f"{message} ({hint})", code=code)


def parse_callback(message_id: int, params: dict[str, str]) -> list[CallbackResult]:
    """The delivery report for our message ``message_id`` (query string ``params``)."""
    return [_report(message_id, params)]


def parse_pool_callback(
    pool_id: int, members: dict[int, str], params: dict[str, str]
) -> list[CallbackResult]:
    """An advertising report for pool ``pool_id``: one result per row ``{id: phone}``.

    A report naming ``phonenumber`` applies to that phone's row only.
    """
    phone = params.get("phonenumber", "")
    if phone:
        members = {m: p for m, p in members.items() if vn_national(p) == vn_national(phone)}
    return [_report(m, params, f"pool {pool_id}") for m in sorted(members)]


def _report(message_id: int, params: dict[str, str], via: str = "") -> CallbackResult:
    status, success, failed = (
        params.get(k, "") for k in ("SendStatus", "SendSuccess", "SendFailed")
    )
    if status == "5" and success not in ("", "0"):
        kind = "delivered"
    elif status == "4" or (status == "5" and failed not in ("", "0")):
        kind = "failed"
    elif status == "5":
        kind = "sent"
    else:
        kind = "pending"  # 7: waiting for the carrier
    event_id = f"{params.get('SMSID', '')}:{message_id}:{status}:{success}:{failed}"
    payload = {**params, "reason": f"eSMS SendStatus {status}"} if kind == "failed" else params
    return CallbackResult(
        kind,
        event_id,
        dict(payload),
        message_ids=(str(message_id),),
        what=f"message {message_id}" + (f" ({via})" if via else ""),
    )
