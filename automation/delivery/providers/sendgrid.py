"""SendGrid Event Webhook (e-mail results), verified with SENDGRID_WEBHOOK_PUBLIC_KEY."""

from __future__ import annotations

from automation.core.config import Settings
from automation.delivery.providers.base import CallbackRoute, Sender
from channels import sendgrid
from channels.callback import CallbackRequest, CallbackResult, required

NAME = "sendgrid"


def _handle(request: CallbackRequest, settings: Settings) -> list[CallbackResult]:
    """A signed batch of events (JSON array, ECDSA signature headers)."""
    key = required(settings.sendgrid_webhook_public_key, "SENDGRID_WEBHOOK_PUBLIC_KEY")
    return sendgrid.read_callback(request, key)


SENDERS: tuple[Sender, ...] = ()
ROUTES = (CallbackRoute(NAME, "POST", "/sendgrid", _handle),)
