"""Signed tracking URLs: click ``/t/c/<token>``, open ``/t/o/<token>``, unsubscribe ``/u/<token>``.

A pooled advertising SMS (automation.delivery.pools) carries one click URL per pool,
``/t/p/<token>`` (pool id and link index), since its text is the same for every phone.

Tokens are short on purpose (SMS segments cost money): ``<payload>.<signature>``
where the payload is the message id (and, for clicks, the link index) in base 36
and the signature is an itsdangerous HMAC-SHA256 truncated to 96 bits, keyed by
``settings.secret_key`` with one salt per kind, so a token of one kind is never
accepted as another. A click token never carries the target URL: the target is
looked up in ``Message.links`` (``{"0": "https://...", ...}``), so the redirect
can only go where that message's template pointed (no open redirect).

Used by the link rewriter automation/messages/rewrite.py (build) and by
automation/ingest/tracking.py (verify + resolve).
"""

from __future__ import annotations

import hashlib
import hmac

from itsdangerous import BadSignature, Signer
from itsdangerous.signer import HMACAlgorithm

from automation.core.config import Settings, get_settings
from automation.core.models import Message

CLICK, OPEN, UNSUBSCRIBE, POOL_CLICK = "click", "open", "unsubscribe", "pool-click"
_PATHS = {CLICK: "/t/c/", OPEN: "/t/o/", UNSUBSCRIBE: "/u/", POOL_CLICK: "/t/p/"}
_SIGNATURE_BYTES = 12


class BadLink(ValueError):
    """A token that is malformed, forged or of the wrong kind."""


class _TruncatedHMAC(HMACAlgorithm):
    """HMAC-SHA256 cut to 96 bits: plenty against forgery, short enough for SMS."""

    def __init__(self) -> None:
        super().__init__(hashlib.sha256)

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return hmac.new(key, msg=value, digestmod=hashlib.sha256).digest()[:_SIGNATURE_BYTES]


def _signer(kind: str, settings: Settings) -> Signer:
    return Signer(settings.secret_key, salt=f"ma.{kind}", sep=".", algorithm=_TruncatedHMAC())


def _b36(value: int) -> str:
    if value < 0:
        raise ValueError("ids are never negative")
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        value, rest = divmod(value, 36)
        out = digits[rest] + out
        if value == 0:
            return out


def make_token(kind: str, *numbers: int, settings: Settings | None = None) -> str:
    """Sign ``numbers`` (message id, link index) as a compact URL-safe token of ``kind``."""
    payload = "-".join(_b36(n) for n in numbers)
    return _signer(kind, settings or get_settings()).sign(payload).decode("ascii")


def read_token(kind: str, token: str, count: int, settings: Settings | None = None) -> list[int]:
    """Verify a token of ``kind`` and return its ``count`` numbers; BadLink otherwise."""
    try:
        payload = _signer(kind, settings or get_settings()).unsign(token.encode("ascii"))
        numbers = [int(part, 36) for part in payload.decode("ascii").split("-")]
    except (BadSignature, UnicodeError, ValueError) as exc:
        raise BadLink(f"invalid {kind} link") from exc
    if len(numbers) != count:
        raise BadLink(f"invalid {kind} link")
    return numbers


def _url(kind: str, token: str, settings: Settings) -> str:
    return settings.public_base_url.rstrip("/") + _PATHS[kind] + token


def tracking_url(message_id: int, link_index: int, settings: Settings | None = None) -> str:
    """Signed click URL for link number ``link_index`` of message ``message_id``."""
    settings = settings or get_settings()
    return _url(CLICK, make_token(CLICK, message_id, link_index, settings=settings), settings)


def pool_click_url(pool_id: int, link_index: int, settings: Settings | None = None) -> str:
    """Signed click URL for link ``link_index`` of an advertising SMS pool (same for all)."""
    settings = settings or get_settings()
    token = make_token(POOL_CLICK, pool_id, link_index, settings=settings)
    return _url(POOL_CLICK, token, settings)


def verify_pool_click(token: str, settings: Settings | None = None) -> tuple[int, int]:
    """(pool id, link index) from a pool click token; BadLink when forged or malformed."""
    pool_id, index = read_token(POOL_CLICK, token, 2, settings)
    return pool_id, index


def open_url(message_id: int, settings: Settings | None = None) -> str:
    """Signed open-pixel URL for an e-mail."""
    settings = settings or get_settings()
    return _url(OPEN, make_token(OPEN, message_id, settings=settings), settings)


def unsubscribe_url(message_id: int, settings: Settings | None = None) -> str:
    """Signed unsubscribe URL (GET confirms, POST unsubscribes) for the message's contact."""
    settings = settings or get_settings()
    return _url(UNSUBSCRIBE, make_token(UNSUBSCRIBE, message_id, settings=settings), settings)


def verify_click(token: str, settings: Settings | None = None) -> tuple[int, int]:
    """(message id, link index) from a click token; BadLink when forged or malformed."""
    message_id, index = read_token(CLICK, token, 2, settings)
    return message_id, index


def verify_open(token: str, settings: Settings | None = None) -> int:
    """Message id from an open-pixel token; BadLink when forged or malformed."""
    return read_token(OPEN, token, 1, settings)[0]


def verify_unsubscribe(token: str, settings: Settings | None = None) -> int:
    """Message id from an unsubscribe token; BadLink when forged or malformed."""
    return read_token(UNSUBSCRIBE, token, 1, settings)[0]


def link_target(message: Message, index: int) -> str | None:
    """The URL recorded for link ``index`` of ``message`` (None if there is no such link)."""
    target = (message.links or {}).get(str(index))
    if isinstance(target, str) and target.startswith(("http://", "https://")):
        return target
    return None


def is_own_url(url: str, settings: Settings | None = None) -> bool:
    """True for our tracking/unsubscribe URLs (never rewritten again)."""
    base = (settings or get_settings()).public_base_url.rstrip("/")
    return any(url.startswith(base + path) for path in _PATHS.values())
