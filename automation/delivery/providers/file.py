"""The file transport: every channel without credentials writes JSON lines to OUTBOX_FILE."""

from __future__ import annotations

from automation.core.config import Settings
from channels.base import Channel
from channels.filetransport import FileTransport

NAME = "file"
RATE = 0.0  # unlimited


def build(channel: str, settings: Settings) -> Channel:
    """A file transport standing in for ``channel``."""
    return FileTransport(settings.outbox_file, name=channel)


def describe(settings: Settings) -> str:
    """How the file transport is named in ``mactl doctor`` and the start-up log."""
    return f"file transport ({settings.outbox_file})"
