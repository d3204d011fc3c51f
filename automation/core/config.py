"""Settings from the environment, one typed object, validated at start."""

from __future__ import annotations

import math
import os
import re
import secrets
import sys
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

DEV_SECRET_KEY = "dev-only-secret-key-change-me"
MIN_SECRET_KEY_CHARS = 32


class Settings(BaseSettings):
    """Every knob the system reads, from environment variables of the same name."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    database_url: str = Field("sqlite:///./automation.db", description="SQLAlchemy URL")
    redis_url: str | None = Field(None, description="unset = in-process broker")
    public_base_url: str = "http://127.0.0.1:8000"
    secret_key: str = DEV_SECRET_KEY
    default_timezone: str = "Asia/Ho_Chi_Minh"
    default_locale: str = "vi"
    default_region: str = "VN"

    shopify_webhook_secret: str | None = None
    haravan_webhook_secret: str | None = None
    haravan_verify_token: str | None = Field(
        None, description="answer Haravan's GET ?hub.verify_token=... subscription check"
    )
    sapo_webhook_secret: str | None = None
    woocommerce_webhook_secret: str | None = None
    events_webhook_secret: str | None = None

    worker_processes: int = Field(2, ge=1, le=64)
    worker_threads: int = Field(8, ge=1, le=256)
    worker_shutdown_seconds: int = Field(
        60, ge=1, le=3600, description="on SIGTERM, how long work in flight may take to finish"
    )
    max_body_bytes: int = Field(1024 * 1024, ge=1024)
    replay_window_seconds: int = Field(300, ge=1)
    cart_abandon_minutes: int = Field(60, ge=1)
    segment_refresh_minutes: int = Field(15, ge=0, description="time-based segment refresh")
    outbox_stale_seconds: int = Field(600, ge=10)
    event_max_attempts: int = Field(
        5, ge=1, le=100, description="failed processing attempts before an event is dead"
    )
    delivery_ambiguous_marketing: Literal["skip", "resend"] = Field(
        "skip",
        description="a marketing row in flight at a crash: skip (ends unknown) or resend",
    )
    log_level: str = "INFO"
    retention_days_raw: int = Field(30, ge=1, description="days raw webhook payloads are kept")
    retention_days_bodies: int = Field(90, ge=1, description="days message bodies are kept")

    # Provider callbacks and tracking (CALLBACKS stream): secrets that sign provider webhooks.
    mailgun_signing_key: str | None = None
    mailgun_max_age_seconds: int = Field(
        300, ge=1, description="refuse Mailgun signature blocks older than this"
    )
    sendgrid_webhook_public_key: str | None = Field(
        None, description="SendGrid Signed Event Webhook verification key (base64)"
    )
    twilio_auth_token: str | None = None
    zalo_app_id: str | None = None
    zalo_oa_secret: str | None = None
    facebook_app_secret: str | None = None
    facebook_verify_token: str | None = None

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite", "postgresql")):
            raise ValueError("must start with sqlite:/// or postgresql+psycopg://")
        if value.startswith("postgresql://") or value.startswith("postgres://"):
            value = "postgresql+psycopg://" + value.split("://", 1)[1]
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must look like redis://host:6379/0")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown IANA timezone, e.g. Asia/Ho_Chi_Minh") from exc
        return value

    @property
    def is_sqlite(self) -> bool:
        """True on the embedded default database."""
        return self.database_url.startswith("sqlite")

    def webhook_secret(self, source: str) -> str | None:
        """The signing secret configured for a webhook source, if any."""
        value = getattr(self, f"{source}_webhook_secret", None)
        return value if isinstance(value, str) and value else None

    # --- Delivery stream (automation/delivery/, templating, links): channels, policy, limits ---
    # (twilio_auth_token, zalo_app_id, zalo_oa_secret, facebook_app_secret and
    # facebook_verify_token are declared above by the callbacks stream and shared.)
    shop_name: str = "Cửa hàng"
    shop_url: str = "https://shop.example.vn"
    smtp_url: str | None = Field(None, description="smtp://user:pass@host:587 or smtps://...")
    email_from: str = "Cửa hàng <no-reply@shop.example.vn>"
    unsubscribe_mailto: str | None = None
    sms_provider: str = "esms"
    esms_api_base: str = "https://rest.esms.vn/MainService.svc/json"
    esms_api_key: str | None = None
    esms_secret_key: str | None = None
    esms_brandname: str | None = None
    esms_sms_type: str = "2"
    esms_sandbox: bool = False
    esms_ad_pool_seconds: int = Field(
        300, ge=0, description="hold marketing SMS this long to pool them (0: no pooling)"
    )
    twilio_api_base: str = "https://api.twilio.com"
    twilio_account_sid: str | None = None
    twilio_from: str | None = None
    zalo_zns_api_base: str = "https://business.openapi.zalo.me"
    zalo_oa_api_base: str = "https://openapi.zalo.me"
    zalo_oauth_base: str = "https://oauth.zaloapp.com"
    zalo_access_token: str | None = None
    zalo_app_secret: str | None = None
    zalo_refresh_token: str | None = None
    zalo_refresh_token_days: int = Field(90, ge=1, description="refresh token lifetime")
    zalo_refresh_warn_days: int = Field(14, ge=0, description="doctor warns this long before")
    zalo_refresh_ahead_seconds: int = Field(
        7200, ge=60, description="scheduler refreshes the access token this long before expiry"
    )
    zns_template_ids: dict[str, str] = Field(
        default_factory=dict, description='JSON {"order_status/shipped": "231456"}'
    )
    zns_template_file: str | None = Field(None, description="YAML file: template name -> id")
    zns_param_limits: dict[str, int] = Field(
        default_factory=dict, description='JSON overrides {"name": 30, "default": 100}'
    )
    facebook_graph_base: str = "https://graph.facebook.com/v21.0"
    facebook_page_token: str | None = None
    outbox_file: str = "./var/outbox.jsonl"
    templates_dir: str | None = Field(None, description="extra template folder, searched first")
    sms_max_segments: int = Field(3, ge=1, le=10)
    compliance_profile: str = "decree91"
    frequency_caps: dict[str, int] = Field(
        default_factory=dict, description='JSON per consent channel, {"sms": 3, "email": 3}'
    )
    send_windows: dict[str, str] = Field(
        default_factory=dict, description='JSON per consent channel, {"sms": "07:00-22:00"}'
    )
    ad_label: str = "[QC]"
    sms_optout_text: str = "Tu choi QC: {unsubscribe_url}"
    sms_optout_text_ucs2: str = "Từ chối QC: {unsubscribe_url}"
    provider_rate_limits: dict[str, float] = Field(
        default_factory=dict, description='JSON msgs/second per provider, {"zalo_zns": 50}'
    )
    delivery_batch_size: int = Field(50, ge=1, le=1000)
    delivery_concurrency: int = Field(8, ge=1, le=32, description="provider calls in flight")
    delivery_max_attempts: int = Field(6, ge=1, le=50)
    delivery_min_backoff_ms: int = Field(15_000, ge=0)
    delivery_max_backoff_ms: int = Field(3_600_000, ge=1)
    soft_bounce_limit: int = Field(3, ge=1, description="soft bounces that suppress an address")
    soft_bounce_window_days: int = Field(30, ge=1, description="window soft bounces count in")
    late_fallback_window_minutes: int = Field(
        60, ge=0, description="a failure reported this soon after sending sends the fallback"
    )

    @field_validator("provider_rate_limits", "frequency_caps")
    @classmethod
    def _non_negative_numbers(cls, value: dict[str, float]) -> dict[str, float]:
        for key, number in value.items():
            if not math.isfinite(number) or number < 0:
                raise ValueError(f"{key}={number} must be a number >= 0 (0 = unlimited)")
        return value

    @field_validator("sms_provider")
    @classmethod
    def _sms_provider(cls, value: str) -> str:
        if value.lower() not in ("esms", "twilio"):
            raise ValueError("must be esms or twilio")
        return value.lower()

    @field_validator("compliance_profile")
    @classmethod
    def _compliance_profile(cls, value: str) -> str:
        if value.lower() not in ("decree91", "none"):
            raise ValueError("must be decree91 or none")
        return value.lower()


class SettingsError(SystemExit):
    """Raised at start when the environment is wrong; carries one clear line."""


def load_settings() -> Settings:
    """Read settings from the environment or exit with one line naming the bad variable."""
    try:
        settings = Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "environment"
        raise SettingsError(f"configuration error: {name}: {first['msg']}") from None
    except SourceError as exc:  # a value that is not valid JSON for a dict/list setting
        match = re.search(r'field "(\w+)"', str(exc))
        name = match.group(1).upper() if match else "environment"
        raise SettingsError(
            f"configuration error: {name}: not valid JSON; use e.g. '{{\"sms\": 3}}'"
        ) from None
    unset = "secret_key" not in settings.model_fields_set or not settings.secret_key
    if not settings.is_sqlite and (unset or len(settings.secret_key) < MIN_SECRET_KEY_CHARS):
        raise SettingsError(
            f"configuration error: SECRET_KEY: with PostgreSQL set a random value of at least "
            f"{MIN_SECRET_KEY_CHARS} characters, e.g. "
            '`python -c "import secrets; print(secrets.token_urlsafe(48))"`'
        )
    if settings.is_sqlite and unset:
        settings.secret_key = embedded_secret_key(settings.database_url)
    return settings


def embedded_secret_key(database_url: str) -> str:
    """The embedded default's key: read from ``<database file>.secret_key``, made once if missing.

    Generating it says so on stderr (signed links and callback tokens depend on it).
    """
    database = database_url.split(":///", 1)[1] if ":///" in database_url else ""
    path = Path(database + ".secret_key") if database else Path("automation.secret_key")
    if path.is_file():
        key = path.read_text(encoding="utf-8").strip()
        if len(key) >= MIN_SECRET_KEY_CHARS:
            return key
    key = secrets.token_urlsafe(48)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    print(
        f"SECRET_KEY is not set: generated one and saved it in {path} (keep that file; "
        "set SECRET_KEY to choose your own)",
        file=sys.stderr,
    )
    return key


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests call get_settings.cache_clear())."""
    return load_settings()


def fail(message: str) -> None:  # pragma: no cover - used by entry points
    """Print one line to stderr and exit non-zero."""
    print(message, file=sys.stderr)
    raise SystemExit(2)
