"""E-mail over SMTP (SMTP_URL, EMAIL_FROM); e-mail results arrive through a callback unit."""

from __future__ import annotations

from automation.core.config import Settings
from automation.delivery.providers.base import CallbackRoute, Sender
from channels.base import Channel
from channels.email import EmailChannel


def _build(s: Settings) -> Channel:
    assert s.smtp_url
    return EmailChannel(s.smtp_url, s.email_from)


SENDERS = (
    Sender(
        provider="smtp",
        channel="email",
        adapter=EmailChannel,
        rate=50.0,
        need="SMTP_URL",
        configured=lambda s: bool(s.smtp_url),
        detail=lambda s: (s.smtp_url or "").split("@")[-1],
        build=_build,
        settings_prefixes=("smtp", "email"),
    ),
)
ROUTES: tuple[CallbackRoute, ...] = ()
