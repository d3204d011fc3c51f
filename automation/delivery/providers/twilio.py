"""Twilio SMS: adapter from TWILIO_* settings and the signed status-callback route.

Twilio signs every callback with the auth token over the full URL, so the
StatusCallback URL only carries the message id (which the signature then covers).
"""

from __future__ import annotations

from automation.core.config import Settings
from automation.delivery.providers.base import (
    STRING,
    CallbackRoute,
    Sender,
    body_schema,
    header_param,
    public_url,
    query_params,
)
from channels import twilio
from channels.base import Channel
from channels.callback import CallbackRequest, CallbackResult, required

NAME = "twilio"
PATH = "/twilio"


def callback_url(message_id: int | None, settings: Settings) -> str:
    """``{PUBLIC_BASE_URL}/callbacks/twilio[?message_id=N]`` for Twilio ``StatusCallback``."""
    url = public_url(settings, PATH)
    return url if message_id is None else f"{url}?message_id={int(message_id)}"


def _build(s: Settings) -> Channel:
    assert s.twilio_account_sid and s.twilio_auth_token and s.twilio_from
    return twilio.TwilioChannel(
        s.twilio_account_sid, s.twilio_auth_token, s.twilio_from, api_base=s.twilio_api_base
    )


def _handle(request: CallbackRequest, settings: Settings) -> list[CallbackResult]:
    """A status callback (form POST) signed with TWILIO_AUTH_TOKEN."""
    token = required(settings.twilio_auth_token, "TWILIO_AUTH_TOKEN")
    return twilio.read_callback(request, token)


SENDERS = (
    Sender(
        provider=NAME,
        channel="sms",
        adapter=twilio.TwilioChannel,
        rate=10.0,
        need="TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM",
        configured=lambda s: bool(s.twilio_account_sid and s.twilio_auth_token and s.twilio_from),
        detail=lambda s: s.twilio_api_base,
        build=_build,
        settings_prefixes=("sms", "twilio"),
        callback_url=callback_url,
        unreachable={"21211": "invalid phone number", "21614": "not a mobile number"},
    ),
)
DOC = {
    "parameters": [header_param("X-Twilio-Signature"), *query_params("message_id")],
    "requestBody": body_schema(
        "application/x-www-form-urlencoded",
        {n: STRING for n in ("MessageSid", "MessageStatus", "ErrorCode", "To")},
    ),
}
ROUTES = (CallbackRoute(NAME, "POST", PATH, _handle, DOC),)
