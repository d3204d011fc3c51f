"""Signatures of provider callbacks, each checked in constant time.

Twilio    X-Twilio-Signature  base64(HMAC-SHA1(auth token, URL + sorted name+value pairs))
Zalo      X-ZEvent-Signature  [mac=]hex(SHA-256(app id + raw body + timestamp + OA secret))
Facebook  X-Hub-Signature-256 sha256=hex(HMAC-SHA256(app secret, raw body))
Mailgun   body "signature"    hex(HMAC-SHA256(signing key, timestamp + token))
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable


def _same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.strip().encode())


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    """Twilio's request signature for a POST to ``url`` with form ``params``."""
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        grouped.setdefault(name, []).append(value)
    message = url + "".join(
        name + value for name in sorted(grouped) for value in sorted(grouped[name])
    )
    digest = hmac.new(auth_token.encode(), message.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_twilio(
    auth_token: str, url: str, params: Iterable[tuple[str, str]], signature: str
) -> bool:
    """True when ``signature`` is Twilio's signature of this request."""
    return _same(twilio_signature(auth_token, url, list(params)), signature)


def zalo_signature(app_id: str, body: bytes, timestamp: str, oa_secret: str) -> str:
    """Zalo's ``mac``: hex SHA-256 of app id + raw body + timestamp + OA secret."""
    data = app_id.encode() + body + timestamp.encode() + oa_secret.encode()
    return hashlib.sha256(data).hexdigest()


def verify_zalo(app_id: str, body: bytes, timestamp: str, oa_secret: str, header: str) -> bool:
    """True when the X-ZEvent-Signature value (with or without ``mac=``) matches."""
    value = header.strip()
    if value.lower().startswith("mac"):
        value = value[3:].lstrip(" =")
    return _same(zalo_signature(app_id, body, timestamp, oa_secret), value.lower())


def facebook_signature(app_secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value: ``sha256=`` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def verify_facebook(app_secret: str, body: bytes, header: str) -> bool:
    """True when X-Hub-Signature-256 is the HMAC of the raw body under the app secret."""
    return _same(facebook_signature(app_secret, body), header.lower())


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    """Mailgun's webhook signature: hex HMAC-SHA256(signing key, timestamp + token)."""
    message = (timestamp + token).encode()
    return hmac.new(signing_key.encode(), message, hashlib.sha256).hexdigest()


def verify_mailgun(signing_key: str, timestamp: str, token: str, signature: str) -> bool:
    """True when the body's signature block was made with the signing key."""
    return _same(mailgun_signature(signing_key, timestamp, token), signature.lower())
