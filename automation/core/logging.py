"""Structured JSON logs on stderr, one object per line, with personal data masked.

Log records carry ids (contact_id, event_id, message_id), never addresses or names.
As a safety net the formatter masks anything that looks like an email address or
a phone number, the value after a personal key (``first_name='Lan'``, ``"email": ...``)
in messages and tracebacks, and drops `extra` fields whose names say they hold personal
data. SQL parameters never reach a traceback (the engine hides them).

Repeated failures are rate-limited: a record with a traceback (or a ``failure_key``
extra) whose key was logged less than REPEAT_WINDOW seconds ago is dropped and counted;
the next one logged after the window says how many were dropped (``repeated``).
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import orjson

PERSONAL_KEYS = frozenset(
    {"email", "phone", "first_name", "last_name", "name", "address", "to", "recipient",
     "full_name", "zalo_user_id", "facebook_psid", "body", "text", "subject"}
)
#: ``key='value'``, ``"key": "value"``, ``key=value`` for every personal key (reprs, SQL, JSON).
PERSONAL_VALUE_RE = re.compile(
    r"""(?P<key>['"]?\b(?:"""
    + "|".join(sorted(PERSONAL_KEYS, key=len, reverse=True))
    + r""")\b['"]?\s*[:=]\s*)(?P<value>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s,)}\]]+)"""
)
REPEAT_WINDOW = 300.0
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE_RE = re.compile(
    r"(?<![\w.+])(?:(?:\+\d{1,3}[ .-]?|0)\d{2,4}(?:[ .-]?\d{2,4}){2,3}|84\d{9})(?![\w])"
)
DIGIT_RE = re.compile(r"\d")
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def redact(text: str) -> str:
    """Mask email addresses, phone numbers and values of personal keys inside free text.

    A pattern runs only on text holding the character it cannot match without (``=`` or
    ``:`` for a key's value, ``@`` for an address, a digit for a number): most log text
    holds none of some, and each scan costs microseconds on every record."""
    if "=" in text or ":" in text:
        text = PERSONAL_VALUE_RE.sub(_masked_value, text)
    if "@" in text:
        text = EMAIL_RE.sub("[email]", text)
    if DIGIT_RE.search(text):
        text = PHONE_RE.sub("[phone]", text)
    return text


def _masked_value(match: re.Match[str]) -> str:
    """The personal key of a match, its value replaced."""
    return match.group("key") + "[redacted]"


class RepeatFilter(logging.Filter):
    """Drop a failure logged again within ``window`` seconds under the same key; count it."""

    def __init__(self, window: float | None = None) -> None:
        super().__init__()
        self.window = REPEAT_WINDOW if window is None else window
        self._seen: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def key(record: logging.LogRecord) -> str | None:
        """The record's repeat key: its ``failure_key``, or logger + message + exception."""
        explicit = getattr(record, "failure_key", None)
        if explicit is not None:
            return str(explicit)
        if not record.exc_info or record.exc_info[1] is None:
            return None
        exc = record.exc_info[1]
        return f"{record.name}|{record.msg}|{type(exc).__name__}|{str(exc)[:200]}"

    def filter(self, record: logging.LogRecord) -> bool:
        """False for a repeat inside the window; the first one after it carries ``repeated``."""
        key = self.key(record)
        if key is None:
            return True
        clock = time.monotonic()
        with self._lock:
            if len(self._seen) > 10_000:
                self._seen.clear()
            last, dropped = self._seen.get(key, (None, 0))
            if last is not None and clock - last < self.window:
                self._seen[key] = (last, dropped + 1)
                return False
            self._seen[key] = (clock, 0)
        if dropped:
            record.repeated = dropped
        return True


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object: time, level, logger, message and extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key in _STANDARD or key.startswith("_"):
                continue
            if key.lower() in PERSONAL_KEYS:
                data[key] = "[redacted]"
            elif isinstance(value, str):
                data[key] = redact(value)
            elif isinstance(value, float):
                data[key] = value if math.isfinite(value) else None  # NaN is not JSON
            elif isinstance(value, int | bool) or value is None:
                data[key] = value
            else:
                data[key] = redact(json.dumps(value, default=str, ensure_ascii=False))
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
        try:
            return orjson.dumps(data).decode()
        except orjson.JSONEncodeError:  # an int extra beyond 64 bits
            return json.dumps(data, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that always writes to the current sys.stderr (test runners swap it)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(level: str | int = "INFO") -> None:
    """Send every logger's records to stderr as JSON lines at `level` (idempotent)."""
    handler = _StderrHandler()
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):  # ours, and plain-text ones (Dramatiq's basicConfig)
        if getattr(existing, "_automation_json", False) or type(existing) is logging.StreamHandler:
            root.removeHandler(existing)
    handler._automation_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "dramatiq"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
