"""Webhook signatures: HMAC-SHA256 computed and compared in constant time.

Shopify family and WooCommerce: header = base64(HMAC-SHA256(secret, raw body)).
Native events: `X-Signature: sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + raw body)>`
with `X-Timestamp: <unix seconds>`, accepted within the replay window.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


class SignatureError(Exception):
    """The request is not signed by the holder of the secret (HTTP 401)."""

    def __init__(self, error: str, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message


def base64_hmac(secret: str, body: bytes) -> str:
    """base64(HMAC-SHA256(secret, body)), the Shopify/Haravan/Sapo/WooCommerce header value."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify_base64_hmac(secret: str, body: bytes, header_value: str | None, header: str) -> None:
    """Raise SignatureError unless header_value is the base64 HMAC of body (constant time)."""
    if not header_value:
        raise SignatureError("missing_signature", f"header {header} is required")
    expected = base64_hmac(secret, body).encode()
    if not hmac.compare_digest(expected, header_value.strip().encode()):
        raise SignatureError(
            "invalid_signature", f"{header} does not match base64(HMAC-SHA256(secret, raw body))"
        )


def native_signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The `X-Signature` value for a native request: `sha256=` + hex HMAC of `{ts}.{body}`."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def verify_native(
    secret: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now_unix: float,
    window_seconds: int,
) -> None:
    """Check X-Signature over `{timestamp}.{body}` and that X-Timestamp is within the window."""
    if not signature:
        raise SignatureError("missing_signature", "header X-Signature is required")
    if not timestamp:
        raise SignatureError("missing_timestamp", "header X-Timestamp (unix seconds) is required")
    if not timestamp.strip().isdigit() or len(timestamp.strip()) > 12:
        raise SignatureError(
            "invalid_timestamp", "X-Timestamp must be unix seconds, e.g. 1767225600"
        )
    expected = native_signature(secret, timestamp.strip(), body).encode()
    if not hmac.compare_digest(expected, signature.strip().lower().encode()):
        raise SignatureError(
            "invalid_signature",
            "X-Signature must be sha256=<hex HMAC-SHA256(secret, X-Timestamp + '.' + raw body)>",
        )
    if abs(now_unix - int(timestamp)) > window_seconds:
        raise SignatureError(
            "stale_timestamp",
            f"X-Timestamp is more than {window_seconds} s from server time; sign with current time",
        )
