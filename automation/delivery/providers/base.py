"""What a provider unit declares: how it sends on a channel, which callbacks it answers.

Each module next to this one wires one provider from Settings (its adapter factory,
callback URL, rate-limit default, callback routes); the provider's pure parts (adapter,
signature check, payload parsing) live in ``channels/<provider>.py``. The registry in
``__init__`` lists the units.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from automation.core.config import Settings
from channels.base import Channel
from channels.callback import CallbackRequest, CallbackResult

#: A callback handler: verified and parsed results, or a plain-text answer (a challenge).
Handler = Callable[[CallbackRequest, Settings], "list[CallbackResult] | str"]


@dataclass(frozen=True)
class Pooling:
    """A provider that takes marketing as one text for many numbers (automation.delivery.pools)."""

    min_size: int
    max_size: int
    window: Callable[[Settings], int]  # seconds a pool stays open; 0 turns pooling off
    callback_url: Callable[[int, Settings], str] | None = None  # per pool id


@dataclass(frozen=True)
class Sender:
    """How one provider sends on one message channel."""

    provider: str  # recorded on messages; the rate-limit key
    channel: str
    adapter: type[Channel]
    rate: float  # default messages per second (PROVIDER_RATE_LIMITS overrides)
    need: str  # the settings to set, for the "not configured" hint
    configured: Callable[[Settings], bool]
    detail: Callable[[Settings], str]  # where it sends (mactl doctor, start-up log)
    build: Callable[[Settings], Channel]
    settings_prefixes: tuple[str, ...] = ()  # settings whose change rebuilds the adapter
    callback_url: Callable[[int, Settings], str] | None = None
    sender_name: Callable[[Settings], str] | None = None  # named in opt-out texts
    pooling: Pooling | None = None  # marketing sent in pools (advertising SMS)
    #: PermanentError codes meaning the contact cannot be reached on the channel -> why.
    unreachable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Inbox:
    """A callback stored raw in the inbox and applied later by the worker (answered at once).

    For providers that must be answered fast (Zalo: 2 seconds): the route verifies and
    stores; ``automation.inbox.callbacks`` applies the stored body.
    """

    source: str  # the inbox rows' source column (distinct from every shop source)
    key: Callable[[bytes], tuple[str, str]]  # verified body -> (topic, dedupe key)
    parse: Callable[[bytes], list[CallbackResult]]  # stored body -> its results


@dataclass(frozen=True)
class CallbackRoute:
    """One HTTP route under ``/callbacks`` that a provider calls us back on."""

    provider: str  # recorded on message events
    method: str
    path: str
    handle: Handler
    #: The route's OpenAPI parameters and requestBody (the handler reads the raw request).
    openapi: dict[str, Any] | None = None
    inbox: Inbox | None = None  # set: store in the inbox and answer, apply afterwards


STRING: dict[str, Any] = {"type": "string"}
OBJECT: dict[str, Any] = {"type": "object"}


def header_param(name: str) -> dict[str, Any]:
    """An OpenAPI required header parameter (a signature header)."""
    return {"name": name, "in": "header", "required": True, "schema": STRING}


def query_params(*names: str) -> list[dict[str, Any]]:
    """Optional OpenAPI string query parameters."""
    return [{"name": n, "in": "query", "required": False, "schema": STRING} for n in names]


def body_schema(media_type: str, properties: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI requestBody: an object with ``properties`` in ``media_type``."""
    schema = {"type": "object", "properties": properties}
    return {"required": True, "content": {media_type: {"schema": schema}}}


def public_url(settings: Settings, path: str) -> str:
    """``PUBLIC_BASE_URL`` + ``/callbacks`` + ``path``."""
    return f"{settings.public_base_url.rstrip('/')}/callbacks{path}"
