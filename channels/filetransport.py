"""Demo transport: append each message as one JSON line to a file.

Stands in for any channel without credentials. Thread-safe (one lock per file
path, shared by every instance) and each line is written with a single
``write`` on a file opened for append.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from pathlib import Path

from channels.base import Channel, OutboundMessage, SendResult

_locks: dict[Path, threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(path: Path) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(path, threading.Lock())


class FileTransport(Channel):
    """Write messages to ``path`` as JSON lines and report them as sent."""

    def __init__(self, path: str | Path, name: str = "file") -> None:
        self.path = Path(path).resolve()
        self.name = name
        self._lock = _lock_for(self.path)

    def send(self, msg: OutboundMessage) -> SendResult:
        """Append the message; provider id is ``file-{id}``."""
        record = dataclasses.asdict(msg)
        record["transport"] = self.name
        record["sent_at"] = time.time()
        line = json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n"
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as fh:
                fh.write(line)
        return SendResult(provider_message_id=f"file-{msg.id}")
