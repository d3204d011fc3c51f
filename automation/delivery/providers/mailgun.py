"""Mailgun events webhook (e-mail results), verified with MAILGUN_SIGNING_KEY."""

from __future__ import annotations

from automation.core.config import Settings
from automation.delivery.providers.base import (
    OBJECT,
    CallbackRoute,
    Sender,
    body_schema,
)
from channels import mailgun
from channels.callback import CallbackRequest, CallbackResult, required

NAME = "mailgun"


def _handle(request: CallbackRequest, settings: Settings) -> list[CallbackResult]:
    """One event (JSON with a signature block)."""
    key = required(settings.mailgun_signing_key, "MAILGUN_SIGNING_KEY")
    return mailgun.read_callback(request, key)


SENDERS: tuple[Sender, ...] = ()
DOC = {"requestBody": body_schema("application/json", {"signature": OBJECT, "event-data": OBJECT})}
ROUTES = (CallbackRoute(NAME, "POST", "/mailgun", _handle, DOC),)
