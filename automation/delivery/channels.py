"""Build channel adapters from settings; file transport for channels without credentials.

=========  ====================================================  =====================
channel    configured when                                       adapter
=========  ====================================================  =====================
email      SMTP_URL                                              EmailChannel
sms        SMS_PROVIDER=esms: ESMS_API_KEY+ESMS_SECRET_KEY+      EsmsChannel
           ESMS_BRANDNAME; twilio: TWILIO_ACCOUNT_SID+           TwilioChannel
           TWILIO_AUTH_TOKEN+TWILIO_FROM
zalo_zns   ZALO_ACCESS_TOKEN, or ZALO_APP_ID+ZALO_APP_SECRET+     ZaloZnsChannel
           ZALO_REFRESH_TOKEN (refreshing, DB token store)
zalo_oa    same as zalo_zns                                      ZaloOaChannel
messenger  FACEBOOK_PAGE_TOKEN                                   MessengerChannel
=========  ====================================================  =====================

Anything else goes to ``FileTransport(OUTBOX_FILE)`` and a warning is logged once.
Adapters are built once per process per configuration and shared by worker threads.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from automation.core.clock import ensure_utc, now
from automation.core.config import Settings, get_settings
from automation.core.models import ProviderToken
from channels.base import Channel
from channels.email import EmailChannel
from channels.esms import EsmsChannel
from channels.facebook import MessengerChannel
from channels.filetransport import FileTransport
from channels.twilio import TwilioChannel
from channels.zalo import ZaloOaChannel, ZaloZnsChannel
from channels.zalo_token import OAuthRefresher, StaticToken, ZaloTokenProvider

log = logging.getLogger(__name__)
CHANNELS = ("email", "sms", "zalo_zns", "zalo_oa", "messenger")
ZALO_TOKEN_KEY = "zalo_oa"


@dataclass(frozen=True)
class ChannelState:
    """How one channel will send: its provider, or the file transport and what is missing."""

    channel: str
    provider: str
    configured: bool
    detail: str


class DbTokenStore:
    """channels.TokenStore on the provider_tokens table (access + refresh saved together).

    Each load/save uses its own short transaction, never the caller's session. The
    first load seeds the row from ZALO_ACCESS_TOKEN / ZALO_REFRESH_TOKEN.
    """

    def __init__(
        self, factory: sessionmaker[Session], provider: str, seed: tuple[str, str]
    ) -> None:
        self.factory, self.provider, self.seed = factory, provider, seed

    def load(self) -> tuple[str, str, float]:
        """(access, refresh, expires_at epoch seconds); seeds the row on first use."""
        stored = self._read()
        if stored is None:
            self._seed()
            stored = self._read()
        if stored is None:  # pragma: no cover - the row was deleted while seeding
            raise RuntimeError(f"provider_tokens row {self.provider!r} vanished while seeding")
        return stored

    def _read(self) -> tuple[str, str, float] | None:
        with self.factory() as session:
            row = session.get(ProviderToken, self.provider)
            if row is None:
                return None
            expires = ensure_utc(row.expires_at).timestamp() if row.expires_at else 0.0
            return row.access_token, row.refresh_token or "", expires

    def _seed(self) -> None:
        """Insert the configured pair; never overwrite a pair another worker stored.

        Workers starting together all find no row: the first insert wins and the others
        read it (an upsert here could put back a refresh token already spent).
        """
        from datetime import UTC, datetime

        access, refresh = self.seed
        # Unknown expiry for a seeded token: assume usable for an hour; a rejection refreshes it.
        expires_at = datetime.fromtimestamp(time.time() + 3600, UTC) if access else None
        row = ProviderToken(
            provider=self.provider,
            access_token=access,
            refresh_token=refresh,
            expires_at=expires_at,
            updated_at=now(),
        )
        try:
            with self.factory() as session, session.begin():
                session.add(row)
        except IntegrityError:
            pass  # another worker seeded it first

    def save(self, access: str, refresh: str, expires_at: float) -> None:
        """Store the rotated pair in one transaction (row locked on PostgreSQL)."""
        from datetime import UTC, datetime

        with self.factory() as session, session.begin():
            row = session.scalar(
                select(ProviderToken)
                .where(ProviderToken.provider == self.provider)
                .with_for_update()
            )
            if row is None:
                row = ProviderToken(provider=self.provider)
                session.add(row)
            row.access_token, row.refresh_token = access, refresh
            row.expires_at = datetime.fromtimestamp(expires_at, UTC) if expires_at else None
            row.updated_at = now()


def zalo_tokens(settings: Settings) -> ZaloTokenProvider | None:
    """The Zalo token provider for the settings, or None when Zalo is not configured."""
    if settings.zalo_app_id and settings.zalo_app_secret and settings.zalo_refresh_token:
        from automation.core.db import session_factory

        store = DbTokenStore(
            session_factory(settings),
            ZALO_TOKEN_KEY,
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


def channel_state(channel: str, settings: Settings | None = None) -> ChannelState:
    """Whether ``channel`` has credentials, which provider it uses, or what is missing."""
    s = settings or get_settings()
    file = f"file transport ({s.outbox_file})"
    if channel == "email":
        ok = bool(s.smtp_url)
        return ChannelState(
            channel,
            "smtp" if ok else "file",
            ok,
            s.smtp_url.split("@")[-1] if ok and s.smtp_url else f"{file}: set SMTP_URL",
        )
    if channel == "sms":
        if s.sms_provider == "twilio":
            ok = bool(s.twilio_account_sid and s.twilio_auth_token and s.twilio_from)
            need = "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM"
            return ChannelState(
                channel,
                "twilio" if ok else "file",
                ok,
                s.twilio_api_base if ok else f"{file}: set {need}",
            )
        ok = bool(s.esms_api_key and s.esms_secret_key and s.esms_brandname)
        need = "ESMS_API_KEY, ESMS_SECRET_KEY, ESMS_BRANDNAME"
        return ChannelState(
            channel, "esms" if ok else "file", ok, s.esms_api_base if ok else f"{file}: set {need}"
        )
    if channel in ("zalo_zns", "zalo_oa"):
        ok = bool(
            s.zalo_access_token or (s.zalo_app_id and s.zalo_app_secret and s.zalo_refresh_token)
        )
        base = s.zalo_zns_api_base if channel == "zalo_zns" else s.zalo_oa_api_base
        need = "ZALO_ACCESS_TOKEN (or ZALO_APP_ID, ZALO_APP_SECRET, ZALO_REFRESH_TOKEN)"
        return ChannelState(
            channel, channel if ok else "file", ok, base if ok else f"{file}: set {need}"
        )
    if channel == "messenger":
        ok = bool(s.facebook_page_token)
        return ChannelState(
            channel,
            "messenger" if ok else "file",
            ok,
            s.facebook_graph_base if ok else f"{file}: set FACEBOOK_PAGE_TOKEN",
        )
    raise ValueError(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")


def channel_states(settings: Settings | None = None) -> list[ChannelState]:
    """The state of every channel (for ``mactl doctor`` and the start-up log)."""
    return [channel_state(c, settings) for c in CHANNELS]


def build_adapter(channel: str, settings: Settings | None = None) -> tuple[Channel, str]:
    """A new adapter for ``channel`` and its provider name (``file`` without credentials)."""
    s = settings or get_settings()
    state = channel_state(channel, s)
    if not state.configured:
        log.warning("channel %s: no credentials, using the %s", channel, state.detail)
        return FileTransport(s.outbox_file, name=channel), "file"
    adapter: Channel
    if channel == "email":
        assert s.smtp_url
        adapter = EmailChannel(s.smtp_url, s.email_from)
    elif channel == "sms" and s.sms_provider == "twilio":
        assert s.twilio_account_sid and s.twilio_auth_token and s.twilio_from
        adapter = TwilioChannel(
            s.twilio_account_sid, s.twilio_auth_token, s.twilio_from, api_base=s.twilio_api_base
        )
    elif channel == "sms":
        assert s.esms_api_key and s.esms_secret_key and s.esms_brandname
        adapter = EsmsChannel(
            s.esms_api_key,
            s.esms_secret_key,
            s.esms_brandname,
            api_base=s.esms_api_base,
            sms_type=s.esms_sms_type,
            sandbox=s.esms_sandbox,
        )
    elif channel in ("zalo_zns", "zalo_oa"):
        tokens = zalo_tokens(s)
        assert tokens is not None
        adapter = (
            ZaloZnsChannel(tokens, api_base=s.zalo_zns_api_base)
            if channel == "zalo_zns"
            else ZaloOaChannel(tokens, api_base=s.zalo_oa_api_base)
        )
    else:
        assert s.facebook_page_token
        adapter = MessengerChannel(s.facebook_page_token, graph_base=s.facebook_graph_base)
    log.info("channel %s: sending through %s (%s)", channel, state.provider, state.detail)
    return adapter, state.provider


_cache: dict[tuple[Any, ...], dict[str, tuple[Channel, str]]] = {}
_cache_lock = threading.Lock()


def _fingerprint(s: Settings) -> tuple[Any, ...]:
    return tuple(
        str(getattr(s, name))
        for name in sorted(type(s).model_fields)
        if name.startswith(
            ("smtp", "email", "sms", "esms", "twilio", "zalo", "facebook", "outbox", "database")
        )
    )


def get_adapter(channel: str, settings: Settings | None = None) -> tuple[Channel, str]:
    """The shared adapter for ``channel`` (built on first use for this configuration)."""
    s = settings or get_settings()
    key = _fingerprint(s)
    with _cache_lock:
        adapters = _cache.setdefault(key, {})
        if channel not in adapters:
            adapters[channel] = build_adapter(channel, s)
        return adapters[channel]


def close_adapters() -> None:
    """Close every cached adapter (tests, shutdown)."""
    with _cache_lock:
        for adapters in _cache.values():
            for adapter, _ in adapters.values():
                adapter.close()
        _cache.clear()


_PROVIDERS = {
    "EmailChannel": "smtp",
    "EsmsChannel": "esms",
    "TwilioChannel": "twilio",
    "ZaloZnsChannel": "zalo_zns",
    "ZaloOaChannel": "zalo_oa",
    "MessengerChannel": "messenger",
    "FileTransport": "file",
}


def provider_name(adapter: Channel) -> str:
    """The provider name recorded on messages for an adapter instance."""
    for cls in type(adapter).__mro__:
        if cls.__name__ in _PROVIDERS:
            return _PROVIDERS[cls.__name__]
    return adapter.name
