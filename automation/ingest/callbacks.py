"""Provider callbacks: verify, parse, then hand each result to automation.feedback.results.

Routes (auth):
  GET  /callbacks/esms/{message_id}/{token}  per-message secret token (eSMS signs nothing)
  POST /callbacks/twilio                     X-Twilio-Signature (TWILIO_AUTH_TOKEN)
  POST /callbacks/zalo                       X-ZEvent-Signature (ZALO_APP_ID, ZALO_OA_SECRET)
  GET  /callbacks/facebook                   hub.verify_token (FACEBOOK_VERIFY_TOKEN)
  POST /callbacks/facebook                   X-Hub-Signature-256 (FACEBOOK_APP_SECRET)
  POST /callbacks/mailgun                    body signature block (MAILGUN_SIGNING_KEY)

Unsigned or mis-signed calls get 401 and store nothing; a signed call about a message we
do not know gets 200 with ``{"status": "ignored"}`` and a log line, so providers stop
retrying.
"""

from __future__ import annotations

import hmac
import json
import logging
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from automation.core.config import get_settings
from automation.core.db import session_scope
from automation.feedback import callbacks as apply
from automation.feedback.results import dispatch_events
from automation.ingest.callback_urls import verify_esms_token
from automation.ingest.provider_signatures import (
    verify_facebook,
    verify_mailgun,
    verify_twilio,
    verify_zalo,
)

log = logging.getLogger(__name__)
router = APIRouter(prefix="/callbacks", tags=["callbacks"])


class CallbackError(Exception):
    """A rejected callback: HTTP status, short code and a message naming the problem."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message


def _reject(exc: CallbackError) -> JSONResponse:
    log.warning("callback rejected: %s %s", exc.error, exc.message)
    return JSONResponse({"error": exc.error, "message": exc.message}, status_code=exc.status)


def _unauthorized(message: str, error: str = "invalid_signature") -> CallbackError:
    return CallbackError(401, error, message)


def _secret(value: str | None, name: str) -> str:
    if not value:
        raise _unauthorized(f"{name} is not set: callbacks cannot be verified", "not_configured")
    return value


async def _body(request: Request) -> bytes:
    limit = get_settings().max_body_bytes
    body = await request.body()
    if len(body) > limit:
        raise CallbackError(413, "body_too_large", f"body is larger than {limit} bytes")
    return body


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise CallbackError(400, "invalid_json", f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise CallbackError(400, "invalid_json", "body must be a JSON object")
    return data


def _run(fn: Any, *args: Any) -> JSONResponse:
    """Apply a parsed callback in one transaction, then queue its events for processing."""
    with session_scope() as session:
        outcome: apply.Outcome = fn(session, *args)
    dispatch_events(outcome.event_ids)
    status = "ignored" if outcome.ignored and not (outcome.applied or outcome.duplicates) else "ok"
    return JSONResponse({"status": status, **outcome.answer()})


@router.get("/esms/{message_id}/{token}")
def esms_callback(message_id: int, token: str, request: Request) -> Response:
    """eSMS delivery report (HTTP GET, query string fields SMSID, SendStatus, ...)."""
    if not verify_esms_token(message_id, token):
        return _reject(_unauthorized("unknown eSMS callback token", "invalid_token"))
    params = dict(request.query_params)
    return _run(apply.esms, message_id, params)


@router.post("/twilio")
async def twilio_callback(request: Request) -> Response:
    """Twilio status callback (form POST)."""
    try:
        token = _secret(get_settings().twilio_auth_token, "TWILIO_AUTH_TOKEN")
        signature = request.headers.get("X-Twilio-Signature")
        if not signature:
            raise _unauthorized("header X-Twilio-Signature is required", "missing_signature")
        body = await _body(request)
        try:
            params = parse_qsl(body.decode(), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise CallbackError(400, "invalid_form", "body is not a UTF-8 form") from None
        url = get_settings().public_base_url.rstrip("/") + request.url.path
        if request.url.query:
            url += "?" + request.url.query
        if not verify_twilio(token, url, params, signature):
            raise _unauthorized(
                f"X-Twilio-Signature does not match for {url} (check PUBLIC_BASE_URL)"
            )
    except CallbackError as exc:
        return _reject(exc)
    return _run(apply.twilio, dict(params), request.query_params.get("message_id"))


@router.post("/zalo")
async def zalo_callback(request: Request) -> Response:
    """Zalo webhook (ZNS and OA events)."""
    settings = get_settings()
    try:
        header = request.headers.get("X-ZEvent-Signature")
        if not header:
            raise _unauthorized("header X-ZEvent-Signature is required", "missing_signature")
        app_id = _secret(settings.zalo_app_id, "ZALO_APP_ID")
        secret = _secret(settings.zalo_oa_secret, "ZALO_OA_SECRET")
        body = await _body(request)
        data = _json(body)
        timestamp = str(data.get("timestamp", ""))
        if not verify_zalo(app_id, body, timestamp, secret, header):
            raise _unauthorized(
                "X-ZEvent-Signature must be sha256(app id + raw body + timestamp + OA secret)"
            )
    except CallbackError as exc:
        return _reject(exc)
    return _run(apply.zalo, data)


@router.get("/facebook")
def facebook_verify(request: Request) -> Response:
    """Webhook subscription check: echo hub.challenge when hub.verify_token matches."""
    expected = get_settings().facebook_verify_token
    query = request.query_params
    token = query.get("hub.verify_token", "")
    if (
        query.get("hub.mode") != "subscribe"
        or not expected
        or not hmac.compare_digest(expected.encode(), token.encode())
    ):
        return _reject(CallbackError(403, "verification_failed", "hub.verify_token mismatch"))
    return PlainTextResponse(query.get("hub.challenge", ""))


@router.post("/facebook")
async def facebook_callback(request: Request) -> Response:
    """Messenger webhook: deliveries, reads and inbound messages."""
    try:
        secret = _secret(get_settings().facebook_app_secret, "FACEBOOK_APP_SECRET")
        header = request.headers.get("X-Hub-Signature-256")
        if not header:
            raise _unauthorized("header X-Hub-Signature-256 is required", "missing_signature")
        body = await _body(request)
        if not verify_facebook(secret, body, header):
            raise _unauthorized("X-Hub-Signature-256 must be sha256=<hex HMAC of the raw body>")
        data = _json(body)
    except CallbackError as exc:
        return _reject(exc)
    return _run(apply.facebook, data)


@router.post("/mailgun")
async def mailgun_callback(request: Request) -> Response:
    """Mailgun events webhook (JSON with a signature block)."""
    try:
        key = _secret(get_settings().mailgun_signing_key, "MAILGUN_SIGNING_KEY")
        body = await _body(request)
        try:
            data = _json(body)
        except CallbackError as exc:
            raise _unauthorized(f"no signature block: {exc.message}", "missing_signature") from None
        block = data.get("signature")
        if not isinstance(block, dict) or not all(
            isinstance(block.get(k), str | int) for k in ("timestamp", "token", "signature")
        ):
            raise _unauthorized(
                "signature block {timestamp, token, signature} is required", "missing_signature"
            )
        if not verify_mailgun(
            key, str(block["timestamp"]), str(block["token"]), str(block["signature"])
        ):
            raise _unauthorized("signature must be hex HMAC-SHA256(signing key, timestamp+token)")
        if not isinstance(data.get("event-data"), dict):
            raise CallbackError(400, "invalid_payload", "field event-data (object) is required")
    except CallbackError as exc:
        return _reject(exc)
    return _run(apply.mailgun, data)
