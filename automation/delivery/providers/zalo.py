"""Zalo: ZNS and OA adapters from ZALO_* settings (static or refreshing tokens), webhooks.

Sending is configured by ZALO_ACCESS_TOKEN, or ZALO_APP_ID + ZALO_APP_SECRET +
ZALO_REFRESH_TOKEN (refreshing, tokens kept in the provider_tokens table). Webhooks are
verified with ZALO_APP_ID and ZALO_OA_SECRET.
"""

from __future__ import annotations

from automation.core.config import Settings
from automation.delivery.providers.base import (
    OBJECT,
    STRING,
    CallbackRoute,
    Sender,
    body_schema,
    header_param,
)
from automation.delivery.tokens import DbTokenStore
from channels import zalo
from channels.base import Channel
from channels.callback import CallbackRequest, CallbackResult, required
from channels.zalo_token import OAuthRefresher, StaticToken, ZaloTokenProvider

NAME = "zalo"
TOKEN_KEY = "zalo_oa"
NEED = "ZALO_ACCESS_TOKEN (or ZALO_APP_ID, ZALO_APP_SECRET, ZALO_REFRESH_TOKEN)"


def tokens(settings: Settings) -> ZaloTokenProvider | None:
    """The Zalo token provider for the settings, or None when Zalo is not configured."""
    if settings.zalo_app_id and settings.zalo_app_secret and settings.zalo_refresh_token:
        from automation.core.db import session_factory

        store = DbTokenStore(
            session_factory(settings),
            TOKEN_KEY,
            (settings.zalo_access_token or "", settings.zalo_refresh_token),
        )
        return OAuthRefresher(
            settings.zalo_app_id,
            settings.zalo_app_secret,
            store,
            oauth_base=settings.zalo_oauth_base,
        )
    if settings.zalo_access_token:
        return StaticToken(settings.zalo_access_token)
    return None


def _configured(s: Settings) -> bool:
    return bool(
        s.zalo_access_token or (s.zalo_app_id and s.zalo_app_secret and s.zalo_refresh_token)
    )


def _token_provider(s: Settings) -> ZaloTokenProvider:
    provider = tokens(s)
    assert provider is not None
    return provider


def _build_zns(s: Settings) -> Channel:
    return zalo.ZaloZnsChannel(_token_provider(s), api_base=s.zalo_zns_api_base)


def _build_oa(s: Settings) -> Channel:
    return zalo.ZaloOaChannel(_token_provider(s), api_base=s.zalo_oa_api_base)


def _handle(request: CallbackRequest, settings: Settings) -> list[CallbackResult]:
    """A webhook (ZNS and OA events) signed with X-ZEvent-Signature."""
    signature = zalo.signature_header(request)
    app_id = required(settings.zalo_app_id, "ZALO_APP_ID")
    secret = required(settings.zalo_oa_secret, "ZALO_OA_SECRET")
    return zalo.read_callback(request, signature, app_id, secret)


SENDERS = (
    Sender(
        provider="zalo_zns",
        channel="zalo_zns",
        adapter=zalo.ZaloZnsChannel,
        rate=100.0,
        need=NEED,
        configured=_configured,
        detail=lambda s: s.zalo_zns_api_base,
        build=_build_zns,
        settings_prefixes=("zalo",),
    ),
    Sender(
        provider="zalo_oa",
        channel="zalo_oa",
        adapter=zalo.ZaloOaChannel,
        rate=50.0,
        need=NEED,
        configured=_configured,
        detail=lambda s: s.zalo_oa_api_base,
        build=_build_oa,
        settings_prefixes=("zalo",),
    ),
)
DOC = {
    "parameters": [header_param("X-ZEvent-Signature")],
    "requestBody": body_schema(
        "application/json",
        {"app_id": STRING, "event_name": STRING, "timestamp": STRING, "sender": OBJECT,
         "recipient": OBJECT, "message": OBJECT},
    ),
}
ROUTES = (CallbackRoute(NAME, "POST", "/zalo", _handle, DOC),)
