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

OA (codes from integrations, not verified against Zalo's pages): consultation
messages go to ``POST {api_base}/v3.0/oa/message/cs`` and only reach a follower who
interacted with the OA in the last 7 days: -230 (no interaction in 7 days) is
permanent for that person until they write to the OA again (the domain then skips
their consultation messages, see automation.delivery.zalo_rules), -213 (not
following) is permanent too. Transactional messages go to
``POST {api_base}/v3.0/oa/message/transaction`` as a ``transaction_order`` template
(header + text), which Zalo requires for order updates outside that window.
-216 / -124 are token errors; everything else is transient.

Webhooks (``X-ZEvent-Signature`` = [mac=]hex SHA-256(app id + raw body + timestamp + OA
secret)) parse into CallbackResult: user_received_message -> delivered,
user_seen_message -> read, user_send_* -> replied (the follower wrote to the OA).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from abc import abstractmethod
from collections.abc import Awaitable, Callable
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
NO_INTERACTION = -230
TRANSACTION_PATH = "/v3.0/oa/message/transaction"
HEADER_MAX = 100
#: The event-loop path reads the token store at most this often (seconds).
TOKEN_REUSE_SECONDS = 1.0
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
        self._token: tuple[str | None, float] = (None, 0.0)  # (token, monotonic read time)

    @abstractmethod
    def body(self, msg: OutboundMessage) -> dict[str, Any]:
        """The JSON body for ``msg``."""

    def url_for(self, msg: OutboundMessage) -> str:
        """The endpoint ``msg`` goes to."""
        return self.url

    def send(self, msg: OutboundMessage) -> SendResult:
        """Send; refresh the token and retry once if Zalo rejects it."""
        body, url = self.body(msg), self.url_for(msg)
        token = self.tokens.get()
        data = self._post(url, token, body)
        if _code(data) in TOKEN_ERRORS:
            data = self._post(url, self.tokens.refresh(stale=token), body)
        return self._result(data)

    def async_sender(self) -> Callable[[OutboundMessage], Awaitable[SendResult]] | None:
        """:meth:`asend` when the adapter owns its client (see HttpChannel.aclient)."""
        return self.asend if self.aclient is not None else None

    async def asend(self, msg: OutboundMessage) -> SendResult:
        """:meth:`send` on the event loop; the token store is read in a thread, and a
        token read less than TOKEN_REUSE_SECONDS ago is reused (a stale one is answered
        with a token error: the refresh then finds the store's newer token)."""
        body, url = self.body(msg), self.url_for(msg)
        token = await self._atoken()
        data = await self._apost(url, token, body)
        if _code(data) in TOKEN_ERRORS:
            fresh = await asyncio.to_thread(self.tokens.refresh, stale=token)
            self._token = (fresh, time.monotonic())
            data = await self._apost(url, fresh, body)
        return self._result(data)

    async def _atoken(self) -> str:
        token, read_at = self._token
        if token is None or time.monotonic() - read_at > TOKEN_REUSE_SECONDS:
            token = await asyncio.to_thread(self.tokens.get)
            self._token = (token, time.monotonic())
        return token

    async def _apost(self, url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        response = await self.arequest("POST", url, json=body, headers={"access_token": token})
        return json_object(response, "Zalo")

    def _post(self, url: str, token: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.request("POST", url, json=body, headers={"access_token": token})
        return json_object(response, "Zalo")

    def _result(self, data: dict[str, Any]) -> SendResult:
        code = _code(data)
        payload = as_dict(data.get("data"))
        if code == 0:
            return SendResult(str(payload.get(self.id_field) or "") or None, detail=payload)
        reason = f"Zalo {code}: {data.get('message', '')}"
        if code == NO_INTERACTION:
            reason += (
                " (no interaction with the OA in 7 days: consultation messages to this "
                "person stop until they write to the OA)"
            )
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
    permanent = frozenset({-213, NO_INTERACTION})
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

    def url_for(self, msg: OutboundMessage) -> str:
        """Transactional messages: the transaction endpoint; others: consultation."""
        if msg.purpose == "transactional":
            return self.url.removesuffix(self.path) + TRANSACTION_PATH
        return self.url

    def body(self, msg: OutboundMessage) -> dict[str, Any]:
        """Consultation ``{recipient: {user_id}, message: {text}}``, or a transaction template.

        The transaction template's header is the subject, else the text's first line.
        """
        recipient = {"user_id": msg.to}
        if msg.purpose != "transactional":
            return {"recipient": recipient, "message": {"text": msg.text}}
        first, _, rest = msg.text.strip().partition("\n")
        header = (msg.subject or first).strip()[:HEADER_MAX]
        text = (msg.text if msg.subject else rest).strip() or header
        payload = {
            "template_type": "transaction_order",
            "language": "VI",
            "elements": [
                {"type": "header", "content": header, "align": "left"},
                {"type": "text", "content": text, "align": "left"},
            ],
        }
        message = {"attachment": {"type": "template", "payload": payload}}
        return {"recipient": recipient, "message": message}


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


def callback_key(body: bytes) -> tuple[str, str]:
    """A verified webhook's (topic, dedupe key): event name + msg_id(s) (else the sender)
    + timestamp, identical across Zalo's retries of one event."""
    data = json_body(body)
    name = str(data.get("event_name", ""))
    message = as_dict(data.get("message"))
    ids = message.get("msg_ids") or [message.get("msg_id")]
    what = ",".join(str(i) for i in ids if i) or str(as_dict(data.get("sender")).get("id", ""))
    return name, f"{name}:{what}:{data.get('timestamp', '')}"


def parse_stored(body: bytes) -> list[CallbackResult]:
    """The results of a stored (already verified) webhook body."""
    return parse_callback(json_body(body))
