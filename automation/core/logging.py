"""Structured JSON logs on stderr, one object per line, with personal data masked.

Log records carry ids (contact_id, event_id, message_id), never addresses or names.
As a safety net the formatter masks anything that looks like an email address or
a phone number, and drops `extra` fields whose names say they hold personal data.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

PERSONAL_KEYS = frozenset(
    {"email", "phone", "first_name", "last_name", "name", "address", "to", "recipient"}
)
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
PHONE_RE = re.compile(
    r"(?<![\w.+])(?:(?:\+\d{1,3}[ .-]?|0)\d{2,4}(?:[ .-]?\d{2,4}){2,3}|84\d{9})(?![\w])"
)
_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


def redact(text: str) -> str:
    """Mask email addresses and phone numbers inside free text."""
    return PHONE_RE.sub("[phone]", EMAIL_RE.sub("[email]", text))


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
            elif isinstance(value, int | float | bool) or value is None:
                data[key] = value
            else:
                data[key] = redact(json.dumps(value, default=str, ensure_ascii=False))
        if record.exc_info:
            data["exception"] = redact(self.formatException(record.exc_info))
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
    root = logging.getLogger()
    for existing in list(root.handlers):
        if getattr(existing, "_automation_json", False):
            root.removeHandler(existing)
    handler._automation_json = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    for noisy in ("uvicorn.access", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "dramatiq"):
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True
