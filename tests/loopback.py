"""What the tests' loopback provider servers share: the request they record."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any


@dataclass
class Hit:
    """One request a loopback provider received (recorded before it answers)."""

    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    answered: bool = False
    received_at: float = field(default_factory=time.monotonic)


def read_hit(handler: BaseHTTPRequestHandler) -> Hit:
    """The request being handled: path, lower-cased headers and the JSON body (a body
    that is not JSON is kept as ``{"raw": text}``)."""
    raw = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
    try:
        body = json.loads(raw or b"{}")
    except ValueError:
        body = {"raw": raw.decode(errors="replace")}
    return Hit(handler.path, {k.lower(): v for k, v in handler.headers.items()}, body)
