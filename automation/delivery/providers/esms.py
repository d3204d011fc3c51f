"""eSMS.vn brandname SMS: adapter from ESMS_* settings, token-protected callback URL.

eSMS signs nothing, so its CallbackUrl carries a per-message token: HMAC-SHA256
(SECRET_KEY, "esms-callback:<message id>") truncated to 32 hex characters, in the path
(eSMS appends its own query string): ``/callbacks/esms/<message id>/<token>``.
An advertising pool (automation.delivery.pools) gets ``/callbacks/esms/pool/<pool id>/<token>``
(HMAC over "esms-pool:<pool id>"); its report applies to the pool's rows (those sent
under the report's SMSID when the pool was split; the one row of ``phonenumber`` if named).
"""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import select

from automation.core.config import Settings, get_settings
from automation.core.models import Message
from automation.core.models_sms import SmsPoolMember
from automation.delivery.providers.base import (
    STRING,
    CallbackRoute,
    Pooling,
    Sender,
    public_url,
    query_params,
)
from channels import esms
from channels.base import Channel
from channels.callback import CallbackRejected, CallbackRequest, CallbackResult, unauthorized

NAME = "esms"
PATH = "/esms"
POOL_KIND = "esms-pool"


def token(message_id: int, settings: Settings | None = None, kind: str = "esms-callback") -> str:
    """The secret path token that authenticates eSMS callbacks for one message (or pool)."""
    key = (settings or get_settings()).secret_key.encode()
    digest = hmac.new(key, f"{kind}:{int(message_id)}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def verify_token(
    message_id: int, given: str, settings: Settings | None = None, kind: str = "esms-callback"
) -> bool:
    """True when ``given`` is the eSMS token of ``message_id`` (constant-time compare)."""
    return hmac.compare_digest(token(message_id, settings, kind).encode(), given.encode())


def pool_callback_url(pool_id: int, settings: Settings) -> str:
    """``{PUBLIC_BASE_URL}/callbacks/esms/pool/<pool id>/<token>`` for a pool's request."""
    pool_token = token(pool_id, settings, POOL_KIND)
    return public_url(settings, f"{PATH}/pool/{int(pool_id)}/{pool_token}")


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


def _path_id(request: CallbackRequest, name: str, settings: Settings, kind: str) -> int:
    raw = request.path_params.get(name, "")
    if not raw.isdigit():
        raise CallbackRejected(422, "invalid_path", f"{name} in the path must be a number")
    if not verify_token(int(raw), request.path_params.get("token", ""), settings, kind):
        raise unauthorized("unknown eSMS callback token", "invalid_token")
    return int(raw)


def _handle(request: CallbackRequest, settings: Settings) -> list[CallbackResult]:
    """A delivery report (GET, query string SMSID, SendStatus, ...) behind its path token."""
    message_id = _path_id(request, "message_id", settings, "esms-callback")
    return esms.parse_callback(message_id, dict(request.query))


def pool_members(pool_id: int, smsid: str, settings: Settings) -> dict[int, str]:
    """The pool's rows ``{message id: phone}``; only those sent under ``smsid`` if any."""
    from automation.core.db import session_scope

    stmt = select(SmsPoolMember.message_id, SmsPoolMember.phone).where(
        SmsPoolMember.pool_id == pool_id
    )
    with session_scope(settings) as session:
        if smsid:
            under = stmt.join(Message, Message.id == SmsPoolMember.message_id)
            sent_under = under.where(Message.provider_message_id == smsid)
            found = {m: p for m, p in session.execute(sent_under)}
            if found:
                return found
        return {m: p for m, p in session.execute(stmt)}


def _handle_pool(request: CallbackRequest, settings: Settings) -> list[CallbackResult]:
    """An advertising report (aggregate per SMSID) for every row of one pool."""
    pool_id = _path_id(request, "pool_id", settings, POOL_KIND)
    params = dict(request.query)
    members = pool_members(pool_id, params.get("SMSID", ""), settings)
    return esms.parse_pool_callback(pool_id, members, params)


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
        pooling=Pooling(
            esms.AD_MIN_PHONES,
            esms.AD_MAX_PHONES,
            window=lambda s: s.esms_ad_pool_seconds,
            callback_url=pool_callback_url,
        ),
        unreachable={"108": "invalid phone number"},
    ),
)
def _doc(id_name: str) -> dict[str, object]:
    """OpenAPI parameters of a callback path ``/<id_name>/<token>`` and eSMS's query."""
    return {
        "parameters": [
            {"name": id_name, "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}},
            {"name": "token", "in": "path", "required": True, "schema": STRING},
            *query_params("SMSID", "SendStatus", "SendSuccess", "SendFailed"),
        ]
    }


ROUTES = (
    CallbackRoute(NAME, "GET", PATH + "/pool/{pool_id}/{token}", _handle_pool, _doc("pool_id")),
    CallbackRoute(NAME, "GET", PATH + "/{message_id}/{token}", _handle, _doc("message_id")),
)
