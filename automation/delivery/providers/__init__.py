"""The provider registry: every provider unit, in one list.

Adding a provider touches its module here, its ``channels/<provider>.py``, the line
in ``UNITS``, its settings in automation/core/config.py, its tests and the README.

- ``SENDERS``: how each channel can send; a channel with several (sms) picks the one
  named by the ``<channel>_provider`` setting (``SMS_PROVIDER``), else the first.
- ``ROUTES``: the provider callback routes mounted under ``/callbacks``.
"""

from __future__ import annotations

from automation.core.config import Settings
from automation.core.vocabulary import CHANNELS
from automation.delivery.providers import (
    esms,
    facebook,
    file,
    mailgun,
    sendgrid,
    smtp,
    twilio,
    zalo,
)
from automation.delivery.providers.base import CallbackRoute, Pooling, Sender
from channels.base import Channel
from channels.filetransport import FileTransport

#: Every provider unit; each declares SENDERS and ROUTES (either may be empty).
UNITS = (smtp, esms, twilio, zalo, facebook, mailgun, sendgrid)
SENDERS: tuple[Sender, ...] = tuple(s for unit in UNITS for s in unit.SENDERS)
ROUTES: tuple[CallbackRoute, ...] = tuple(r for unit in UNITS for r in unit.ROUTES)
FILE = file.NAME
#: Provider -> PermanentError codes that mark the contact unreachable on the channel.
UNREACHABLE: dict[str, dict[str, str]] = {s.provider: dict(s.unreachable) for s in SENDERS}
#: Default messages per second per provider (PROVIDER_RATE_LIMITS overrides).
DEFAULT_RATES: dict[str, float] = {**{s.provider: s.rate for s in SENDERS}, FILE: file.RATE}
#: Settings whose change means the adapters must be rebuilt.
SETTINGS_PREFIXES: tuple[str, ...] = tuple(
    dict.fromkeys(p for s in SENDERS for p in s.settings_prefixes)
) + ("outbox", "database")
#: Channel -> the providers that can send it, in SENDERS order.
_BY_CHANNEL: dict[str, list[Sender]] = {}
for _sender in SENDERS:
    _BY_CHANNEL.setdefault(_sender.channel, []).append(_sender)


def sender_for(channel: str, settings: Settings) -> Sender:
    """The provider that sends ``channel`` under these settings (configured or not)."""
    candidates = _BY_CHANNEL.get(channel)
    if not candidates:
        raise ValueError(f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}")
    if len(candidates) == 1:  # called per row: no setting to read
        return candidates[0]
    chosen = str(getattr(settings, f"{channel}_provider", "") or "").lower()
    return next((s for s in candidates if s.provider == chosen), candidates[0])


def callback_url(channel: str, message_id: int, settings: Settings) -> str | None:
    """The status-callback URL to hand the provider of ``channel``, if it takes one."""
    sender = sender_for(channel, settings)
    return sender.callback_url(message_id, settings) if sender.callback_url else None


def pooling_for(channel: str, settings: Settings) -> Pooling | None:
    """How the configured provider of ``channel`` pools marketing (None: it does not)."""
    sender = sender_for(channel, settings)
    spec = sender.pooling
    if spec is None or not sender.configured(settings) or spec.window(settings) <= 0:
        return None
    return spec


def sender_name(channel: str, settings: Settings) -> str:
    """The name recipients see as the sender of ``channel`` (a brandname, else the shop)."""
    sender = sender_for(channel, settings)
    return sender.sender_name(settings) if sender.sender_name else settings.shop_name


def provider_name(adapter: Channel) -> str:
    """The provider name recorded on messages for an adapter instance."""
    if isinstance(adapter, FileTransport):
        return FILE
    for sender in SENDERS:
        if isinstance(adapter, sender.adapter):
            return sender.provider
    return adapter.name


def build_file(channel: str, settings: Settings) -> Channel:
    """The file transport standing in for ``channel`` (no credentials)."""
    return file.build(channel, settings)


def file_detail(settings: Settings) -> str:
    """The file transport's description."""
    return file.describe(settings)
