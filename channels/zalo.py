"""Zalo: ZNS template messages to a phone number, and OA messages to a follower.

Both answer HTTP 200 with ``{"error": <int>, "message": ..., "data": {...}}``;
``error == 0`` is success. A token error triggers one refresh and one retry.

ZNS (``POST {api_base}/message/template``; Zalo's "handle error code" page,
plus codes seen in public integrations, marked *):

=========================================  ==========================
error                                      result
=========================================  ==========================
0                                          SendResult(data.msg_id)
-108 phone invalid, -109 template invalid  PermanentError
-111 / -112 template data empty / invalid  PermanentError
-114 user inactive or rejects ZNS          PermanentError
-118 no Zalo account*, -119 cannot         PermanentError
receive*
-124 access token invalid*, -216*          refresh token, retry once
-115 daily quota reached*                  QuotaExhausted: the channel pauses until
                                           midnight Asia/Ho_Chi_Minh (quota reset)
-100 unknown, -101..-105 app config,       TransientError
anything else
=========================================  ==========================

OA (``POST {api_base}/v3.0/oa/message/cs``; codes from integrations, not
verified against Zalo's pages): -213 user not following the OA and -230 no
interaction in the allowed window are permanent; -216 / -124 are token
errors; everything else is transient.

Webhooks (``X-ZEvent-Signature`` = [mac=]hex SHA-256(app id + raw body + timestamp + OA
secret)) parse into CallbackResult: user_received_message -> delivered,
user_seen_message -> read, user_send_* -> replied (the follower wrote to the OA).
"""

from __future__ import annotations

import hashlib
from abc import abstractmethod
from typing import Any, ClassVar

import httpx

from channels.base import OutboundMessage, SendResult
from channels.callback import (
    IGNORED,
    MESSAGE_ID,
    CallbackRequest,
    CallbackResult,
    from_millis,
    header,
    json_body,
    same,
    unauthorized,
)
from channels.errors import PermanentError, QuotaExhausted, TransientError
from channels.httpchannel import HttpChannel, as_dict, json_object
from channels.phone import msisdn
from channels.retry import RetryPolicy
from channels.zalo_token import ZaloTokenProvider

ZNS_API_BASE = "https://business.openapi.zalo.me"
OA_API_BASE = "https://openapi.zalo.me"
TOKEN_ERRORS = frozenset({-124, -216})
QUOTA_ERRORS = frozenset({-115})
#: ZNS daily quotas reset at midnight Vietnam time.
QUOTA_TIMEZONE = "Asia/Ho_Chi_Minh"


class _ZaloChannel(HttpChannel):
    path: ClassVar[str]
    permanent: ClassVar[frozenset[int]]
    quota: ClassVar[frozenset[int]] = frozenset()
    id_field: ClassVar[str]

    def __init__(
        self,
        tokens: ZaloTokenProvider,
        *,
        api_base: str,
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(client, policy)
        self.tokens = tokens
        self.url = api_base.rstrip("/") + self.path

    @abstractmethod
    def body(self, msg: OutboundMessage) -> dict[str, Any]:
        """The JSON body for ``msg``."""

    def send(self, msg: OutboundMessage) -> SendResult:
        """Send; refresh the token and retry once if Zalo rejects it."""
        body = self.body(msg)
        token = self.tokens.get()
        data = self._post(token, body)
        if _code(data) in TOKEN_ERRORS:
            data = self._post(self.tokens.refresh(stale=token), body)
        return self._result(data)

    def _post(self, token: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.request("POST", self.url, json=body, headers={"access_token": token})
        return json_object(response, "Zalo")

    def _result(self, data: dict[str, Any]) -> SendResult:
        code = _code(data)
        payload = as_dict(data.get("data"))
        if code == 0:
            return SendResult(str(payload.get(self.id_field) or "") or None, detail=payload)
        reason = f"Zalo {code}: {data.get('message', '')}"
        if code in self.permanent:
            raise PermanentError(reason, code=str(code))
        if code in self.quota:
            raise QuotaExhausted(reason, timezone=QUOTA_TIMEZONE, code=str(code))
        raise TransientError(reason, code=str(code))


def _code(data: dict[str, Any]) -> int:
    try:
        return int(data.get("error", -100))
    except (TypeError, ValueError):
        return -100


class ZaloZnsChannel(_ZaloChannel):
    """Zalo Notification Service: an approved template sent to a phone number."""

    name = "zalo_zns"
    path = "/message/template"
    permanent = frozenset({-108, -109, -111, -112, -114, -118, -119})
    quota = QUOTA_ERRORS
    id_field = "msg_id"

    def __init__(
        self,
        tokens: ZaloTokenProvider,
        *,
        api_base: str = ZNS_API_BASE,
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(tokens, api_base=api_base, client=client, policy=policy)

    def body(self, msg: OutboundMessage) -> dict[str, Any]:
        """``{phone: "84...", template_id, template_data, tracking_id}``."""
        if not msg.template_id:
            raise PermanentError("ZNS message without template_id", code="no_template")
        return {
            "phone": msisdn(msg.to),
            "template_id": msg.template_id,
            "template_data": dict(msg.template_data),
            "tracking_id": str(msg.id),
        }


class ZaloOaChannel(_ZaloChannel):
    """Zalo Official Account customer-care text to a follower's user id."""

    name = "zalo_oa"
    path = "/v3.0/oa/message/cs"
    permanent = frozenset({-213, -230})
    id_field = "message_id"

    def __init__(
        self,
        tokens: ZaloTokenProvider,
        *,
        api_base: str = OA_API_BASE,
        client: httpx.Client | None = None,
        policy: RetryPolicy | None = None,
    ) -> None:
        super().__init__(tokens, api_base=api_base, client=client, policy=policy)

    def body(self, msg: OutboundMessage) -> dict[str, Any]:
        """``{recipient: {user_id}, message: {text}}``."""
        return {"recipient": {"user_id": msg.to}, "message": {"text": msg.text}}


def zalo_signature(app_id: str, body: bytes, timestamp: str, oa_secret: str) -> str:
    """Zalo's ``mac``: hex SHA-256 of app id + raw body + timestamp + OA secret."""
    data = app_id.encode() + body + timestamp.encode() + oa_secret.encode()
    return hashlib.sha256(data).hexdigest()


def verify_zalo(app_id: str, body: bytes, timestamp: str, oa_secret: str, header: str) -> bool:
    """True when the X-ZEvent-Signature value (with or without ``mac=``) matches."""
    value = header.strip()
    if value.lower().startswith("mac"):
        value = value[3:].lstrip(" =")
    return same(zalo_signature(app_id, body, timestamp, oa_secret), value.lower())


def read_callback(
    request: CallbackRequest, signature: str, app_id: str, oa_secret: str
) -> list[CallbackResult]:
    """Verify a webhook whose X-ZEvent-Signature is ``signature`` and parse it."""
    data = json_body(request.body)
    timestamp = str(data.get("timestamp", ""))
    if not verify_zalo(app_id, request.body, timestamp, oa_secret, signature):
        raise unauthorized(
            "X-ZEvent-Signature must be sha256(app id + raw body + timestamp + OA secret)"
        )
    return parse_callback(data)


def signature_header(request: CallbackRequest) -> str:
    """The X-ZEvent-Signature header, or a 401 naming it."""
    return header(request, "X-ZEvent-Signature")


def parse_callback(data: dict[str, Any]) -> list[CallbackResult]:
    """One webhook event's results (see the module docstring)."""
    name = str(data.get("event_name", ""))
    body = as_dict(data.get("message"))
    when = from_millis(body.get("delivery_time")) or from_millis(data.get("timestamp"))
    if name == "user_received_message":
        msg_id = str(body.get("msg_id", ""))
        tracking = body.get("tracking_id")
        return [
            CallbackResult(
                "delivered",
                f"{msg_id or MESSAGE_ID}:{name}",
                data,
                message_ids=(str(tracking),) if tracking is not None else (),
                provider_ids=(msg_id,) if msg_id else (),
                at=when,
                what=f"tracking_id {tracking}",
            )
        ]
    if name == "user_seen_message":
        ids = body.get("msg_ids") or [body.get("msg_id")]
        return [
            CallbackResult(
                "read", f"{i}:{name}", data, provider_ids=(i,), at=when, what=f"msg_id {i}"
            )
            for i in [str(i) for i in ids if i]
        ]
    if name.startswith("user_send_"):
        sender = as_dict(data.get("sender"))
        mid = str(body.get("msg_id", "")) or f"{sender.get('id')}:{data.get('timestamp')}"
        return [
            CallbackResult(
                "replied",
                f"reply:{mid}",
                data,
                user_id=str(sender.get("id", "")),
                channels=("zalo_oa",),
                at=when,
            )
        ]
    return [CallbackResult(IGNORED)]
