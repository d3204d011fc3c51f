"""Zalo: ZNS and OA adapters from ZALO_* settings (static or refreshing tokens), webhooks.

Sending is configured by ZALO_ACCESS_TOKEN, or ZALO_APP_ID + ZALO_APP_SECRET +
ZALO_REFRESH_TOKEN (refreshing, tokens kept in the provider_tokens table). Webhooks are
verified with ZALO_APP_ID and ZALO_OA_SECRET, stored raw in the inbox (source
``zalo_callback``, one row per event even when Zalo retries) and answered at once; the
inbox worker applies them (automation.inbox.callbacks).

Tokens: the access token lives about 25 h, the single-use refresh token about
ZALO_REFRESH_TOKEN_DAYS (90). The scheduler task :func:`refresh_ahead` refreshes the pair
ZALO_REFRESH_AHEAD_SECONDS before the access token expires, even when nothing is sent, so
the refresh token is renewed daily; :func:`refresh_warnings` (``mactl doctor``) warns
ZALO_REFRESH_WARN_DAYS before a refresh token that stopped being renewed would lapse.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from automation.core.clock import ensure_utc
from automation.core.config import Settings, get_settings
from automation.core.models import ProviderToken
from automation.delivery.providers.base import (
    OBJECT,
    STRING,
    CallbackRoute,
    Inbox,
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


def tokens(settings: Settings, at: datetime | None = None) -> ZaloTokenProvider | None:
    """The Zalo token provider for the settings, or None when Zalo is not configured.

    ``at`` fixes the refresher's clock (the scheduler's "now").
    """
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
            clock=at.timestamp if at is not None else time.time,
        )
    if settings.zalo_access_token:
        return StaticToken(settings.zalo_access_token)
    return None


def refresh_ahead(session: Session, at: datetime) -> int:
    """Scheduler task: refresh the OA pair if the access token expires soon; 1 if refreshed."""
    provider = tokens(get_settings(), at)
    if not isinstance(provider, OAuthRefresher):
        return 0
    try:
        return int(provider.refresh_if_due(get_settings().zalo_refresh_ahead_seconds))
    finally:
        provider.close()


def refresh_warnings(session: Session, settings: Settings, at: datetime) -> list[str]:
    """A warning when the stored refresh token lapses within ZALO_REFRESH_WARN_DAYS."""
    row = session.get(ProviderToken, TOKEN_KEY)
    if row is None or not row.refresh_token:
        return []
    lapses = ensure_utc(row.updated_at) + timedelta(days=settings.zalo_refresh_token_days)
    left = lapses - at
    if left > timedelta(days=settings.zalo_refresh_warn_days):
        return []
    state = f"lapsed on {lapses:%Y-%m-%d}" if left.total_seconds() <= 0 else (
        f"lapses about {lapses:%Y-%m-%d} (in {left.days} days)"
    )
    return [
        f"Zalo OA refresh token (last renewed {ensure_utc(row.updated_at):%Y-%m-%d}) {state}: "
        "make sure the scheduler runs (it refreshes daily), or re-authorise the app and set "
        "ZALO_REFRESH_TOKEN"
    ]


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
        unreachable={"-118": "no Zalo account", "-108": "invalid phone number"},
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
#: Zalo disables a webhook that is not answered within 2 seconds: store, answer, apply later.
INBOX = Inbox(source="zalo_callback", key=zalo.callback_key, parse=zalo.parse_stored)
ROUTES = (CallbackRoute(NAME, "POST", "/zalo", _handle, DOC, inbox=INBOX),)
