"""The small interface every channel adapter implements.

``channels`` never imports ``automation``: the domain builds an
:class:`OutboundMessage` from an outbox row and hands it to a :class:`Channel`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from channels.errors import ChannelError, PermanentError, TransientError

__all__ = [
    "Channel",
    "ChannelError",
    "OutboundMessage",
    "PermanentError",
    "SendResult",
    "TransientError",
]


@dataclass(frozen=True)
class OutboundMessage:
    """One rendered message ready for a provider.

    ``id`` is the outbox row id and doubles as the idempotency key (eSMS
    RequestId, e-mail Message-ID, Zalo tracking_id). ``to`` is an e-mail
    address, an E.164 phone number (``+84912345678``), a Zalo user id or a
    Messenger PSID depending on ``channel``.
    """

    id: int
    channel: str
    to: str
    text: str
    purpose: str = "transactional"
    subject: str | None = None
    html: str | None = None
    template_id: str | None = None
    template_data: dict[str, str] = field(default_factory=dict)
    buttons: list[dict[str, Any]] = field(default_factory=list)
    unsubscribe_url: str | None = None
    unsubscribe_mailto: str | None = None
    callback_url: str | None = None
    to_name: str | None = None
    window_open: bool | None = None
    message_tag: str | None = None


@dataclass
class SendResult:
    """What the provider said when it accepted a message."""

    provider_message_id: str | None
    segments: int | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    already_sent: bool = False


class Channel(ABC):
    """A provider adapter. Synchronous; safe to share between worker threads."""

    name: str = "channel"
    #: True when ``send_batch`` shares one connection: give it a whole group at once.
    batches: bool = False

    @abstractmethod
    def send(self, msg: OutboundMessage) -> SendResult:
        """Send one message or raise TransientError / PermanentError."""

    def send_batch(self, msgs: Sequence[OutboundMessage]) -> list[SendResult | ChannelError]:
        """Send several messages; one result or error per message, in order."""
        results: list[SendResult | ChannelError] = []
        for msg in msgs:
            try:
                results.append(self.send(msg))
            except ChannelError as exc:
                results.append(exc)
        return results

    def async_sender(self) -> Callable[[OutboundMessage], Awaitable[SendResult]] | None:
        """A coroutine function doing what ``send`` does on an event loop, without a thread
        per call; None when this adapter has none (then ``send`` runs in a thread)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook, no-op by default
        """Release connections the adapter owns (no-op by default)."""

    def __enter__(self) -> Channel:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
