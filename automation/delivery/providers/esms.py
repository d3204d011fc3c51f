"""eSMS.vn brandname SMS: adapter from ESMS_* settings, token-protected callback URL.

eSMS signs nothing, so its CallbackUrl carries a per-message token: HMAC-SHA256
(SECRET_KEY, "esms-callback:<message id>") truncated to 32 hex characters, in the path
(eSMS appends its own query string): ``/callbacks/esms/<message id>/<token>``.
"""

from __future__ import annotations

import hashlib
import hmac

from automation.core.config import Settings, get_settings
from automation.delivery.providers.base import (
    STRING,
    CallbackRoute,
    Sender,
    public_url,
    query_params,
)
from channels import esms
from channels.base import Channel
from channels.callback import CallbackRejected, CallbackRequest, CallbackResult, unauthorized

NAME = "esms"
PATH = "/esms"


def token(message_id: int, settings: Settings | None = None) -> str:
    """The secret path token that authenticates eSMS callbacks for one message."""
    key = (settings or get_settings()).secret_key.encode()
    digest = hmac.new(key, f"esms-callback:{int(message_id)}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def verify_token(message_id: int, given: str, settings: Settings | None = None) -> bool:
    """True when ``given`` is the eSMS token of ``message_id`` (constant-time compare)."""
    return hmac.compare_digest(token(message_id, settings).encode(), given.encode())


def callback_url(message_id: int, settings: Settings) -> str:
    """``{PUBLIC_BASE_URL}/callbacks/esms/<message id>/<token>`` for eSMS ``CallbackUrl``."""
    return public_url(settings, f"{PATH}/{int(message_id)}/{token(message_id, settings)}")


def _build(s: Settings) -> Channel:
    assert s.esms_api_key and s.esms_secret_key and s.esms_brandname
    return esms.EsmsChannel(
        s.esms_api_key,
        s.esms_secret_key,
        s.esms_brandname,
        api_base=s.esms_api_base,
        sms_type=s.esms_sms_type,
        sandbox=s.esms_sandbox,
    )


def _handle(request: CallbackRequest, settings: Settings) -> list[CallbackResult]:
    """A delivery report (GET, query string SMSID, SendStatus, ...) behind its path token."""
    raw = request.path_params.get("message_id", "")
    if not raw.isdigit():
        raise CallbackRejected(422, "invalid_path", "message id in the path must be a number")
    if not verify_token(int(raw), request.path_params.get("token", ""), settings):
        raise unauthorized("unknown eSMS callback token", "invalid_token")
    return esms.parse_callback(int(raw), dict(request.query))


SENDERS = (
    Sender(
        provider=NAME,
        channel="sms",
        adapter=esms.EsmsChannel,
        rate=30.0,
        need="ESMS_API_KEY, ESMS_SECRET_KEY, ESMS_BRANDNAME",
        configured=lambda s: bool(s.esms_api_key and s.esms_secret_key and s.esms_brandname),
        detail=lambda s: s.esms_api_base,
        build=_build,
        settings_prefixes=("sms", "esms"),
        callback_url=callback_url,
        sender_name=lambda s: s.esms_brandname or s.shop_name,
    ),
)
DOC = {
    "parameters": [
        {"name": "message_id", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}},
        {"name": "token", "in": "path", "required": True, "schema": STRING},
        *query_params("SMSID", "SendStatus", "SendSuccess", "SendFailed"),
    ]
}
ROUTES = (CallbackRoute(NAME, "GET", PATH + "/{message_id}/{token}", _handle, DOC),)
