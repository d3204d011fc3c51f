"""Callback URLs we hand to providers when sending (eSMS CallbackUrl, Twilio StatusCallback).

eSMS signs nothing, so its URL carries a per-message token: HMAC-SHA256(SECRET_KEY,
"esms-callback:<message id>") truncated to 32 hex characters, in the path (eSMS appends
its own query string). Twilio signs every request with the auth token over the full URL,
so its URL only needs the message id (which the signature then covers).
"""

from __future__ import annotations

import hashlib
import hmac

from automation.core.config import Settings, get_settings

ESMS_PATH = "/callbacks/esms"
TWILIO_PATH = "/callbacks/twilio"


def _base(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/")


def esms_token(message_id: int, settings: Settings | None = None) -> str:
    """The secret path token that authenticates eSMS callbacks for one message."""
    key = (settings or get_settings()).secret_key.encode()
    digest = hmac.new(key, f"esms-callback:{int(message_id)}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def verify_esms_token(message_id: int, token: str, settings: Settings | None = None) -> bool:
    """True when ``token`` is the eSMS token of ``message_id`` (constant-time compare)."""
    return hmac.compare_digest(esms_token(message_id, settings).encode(), token.encode())


def esms_callback_url(message_id: int, settings: Settings | None = None) -> str:
    """``{PUBLIC_BASE_URL}/callbacks/esms/<message id>/<token>`` for eSMS ``CallbackUrl``."""
    settings = settings or get_settings()
    return f"{_base(settings)}{ESMS_PATH}/{int(message_id)}/{esms_token(message_id, settings)}"


def twilio_callback_url(message_id: int | None = None, settings: Settings | None = None) -> str:
    """``{PUBLIC_BASE_URL}/callbacks/twilio[?message_id=N]`` for Twilio ``StatusCallback``."""
    settings = settings or get_settings()
    url = f"{_base(settings)}{TWILIO_PATH}"
    return url if message_id is None else f"{url}?message_id={int(message_id)}"
