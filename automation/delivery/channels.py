"""Build channel adapters from settings through the provider registry.

Which provider sends each channel, and which settings configure it, is declared by the
units in automation/delivery/providers/. A channel without credentials goes to the file
transport (``OUTBOX_FILE``) and a warning is logged once. Adapters are built once per
process per configuration and shared by worker threads.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any

from automation.core.config import Settings, get_settings
from automation.core.vocabulary import CHANNELS
from automation.delivery.providers import (
    FILE,
    SETTINGS_PREFIXES,
    build_file,
    file_detail,
    provider_name,
    sender_for,
)
from channels.base import Channel

__all__ = [
    "ChannelState",
    "build_adapter",
    "channel_state",
    "channel_states",
    "close_adapters",
    "get_adapter",
    "provider_name",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChannelState:
    """How one channel will send: its provider, or the file transport and what is missing."""

    channel: str
    provider: str
    configured: bool
    detail: str


def channel_state(channel: str, settings: Settings | None = None) -> ChannelState:
    """Whether ``channel`` has credentials, which provider it uses, or what is missing."""
    s = settings or get_settings()
    sender = sender_for(channel, s)
    if sender.configured(s):
        return ChannelState(channel, sender.provider, True, sender.detail(s))
    return ChannelState(channel, FILE, False, f"{file_detail(s)}: set {sender.need}")


def channel_states(settings: Settings | None = None) -> list[ChannelState]:
    """The state of every channel (for ``mactl doctor`` and the start-up log)."""
    return [channel_state(c, settings) for c in CHANNELS]


def build_adapter(channel: str, settings: Settings | None = None) -> tuple[Channel, str]:
    """A new adapter for ``channel`` and its provider name (``file`` without credentials)."""
    s = settings or get_settings()
    state = channel_state(channel, s)
    if not state.configured:
        log.warning("channel %s: no credentials, using the %s", channel, state.detail)
        return build_file(channel, s), FILE
    adapter = sender_for(channel, s).build(s)
    log.info("channel %s: sending through %s (%s)", channel, state.provider, state.detail)
    return adapter, state.provider


_cache: dict[tuple[Any, ...], dict[str, tuple[Channel, str]]] = {}
_cache_lock = threading.Lock()


def _fingerprint(s: Settings) -> tuple[Any, ...]:
    return tuple(
        str(getattr(s, name))
        for name in sorted(type(s).model_fields)
        if name.startswith(SETTINGS_PREFIXES)
    )


def get_adapter(channel: str, settings: Settings | None = None) -> tuple[Channel, str]:
    """The shared adapter for ``channel`` (built on first use for this configuration)."""
    s = settings or get_settings()
    key = _fingerprint(s)
    with _cache_lock:
        adapters = _cache.setdefault(key, {})
        if channel not in adapters:
            adapters[channel] = build_adapter(channel, s)
        return adapters[channel]


def close_adapters() -> None:
    """Close every cached adapter (tests, shutdown)."""
    with _cache_lock:
        for adapters in _cache.values():
            for adapter, _ in adapters.values():
                adapter.close()
        _cache.clear()
