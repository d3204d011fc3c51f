"""Mailgun events webhook (e-mail results), verified with MAILGUN_SIGNING_KEY.

The signature block must be fresh (MAILGUN_MAX_AGE_SECONDS) and its token is spent once
(kept in provider_tokens until it would be stale anyway): a captured block replayed with
other event data gets 403 and changes nothing.
"""

from __future__ import annotations

from datetime import UTC, datetime

from automation.core.config import Settings
from automation.delivery.providers.base import (
    OBJECT,
    CallbackRoute,
    Sender,
    body_schema,
)
from automation.delivery.tokens import spend_once
from channels import mailgun
from channels.callback import (
    CallbackRejected,
    CallbackRequest,
    CallbackResult,
    json_body,
    required,
)

NAME = "mailgun"


def _handle(request: CallbackRequest, settings: Settings) -> list[CallbackResult]:
    """One event (JSON with a signature block), fresh and not replayed."""
    from automation.core.db import session_factory

    key = required(settings.mailgun_signing_key, "MAILGUN_SIGNING_KEY")
    max_age = settings.mailgun_max_age_seconds
    results = mailgun.read_callback(request, key, max_age)
    data = json_body(request.body)
    block = data["signature"]
    until = datetime.fromtimestamp(float(block["timestamp"]) + max_age, UTC)
    if not spend_once(
        session_factory(settings), NAME, str(block["token"]), mailgun.fingerprint(data), until
    ):
        raise CallbackRejected(
            403, "replayed_token", "signature.token was already used with other event data"
        )
    return results


SENDERS: tuple[Sender, ...] = ()
DOC = {"requestBody": body_schema("application/json", {"signature": OBJECT, "event-data": OBJECT})}
ROUTES = (CallbackRoute(NAME, "POST", "/mailgun", _handle, DOC),)
