"""GET /healthz: 200 when the database and the broker answer, else 503 saying which is down."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from automation.core.db import get_engine
from automation.runtime.broker import get_broker

log = logging.getLogger(__name__)
router = APIRouter(tags=["operations"])


def check_database() -> str:
    """'ok' or 'down' (the error class is logged; never the URL, which may hold a password)."""
    try:
        with get_engine().connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception:  # noqa: BLE001 - report, do not raise (healthz logs the result)
        return "down"
    return "ok"


def check_broker() -> str:
    """'ok' for the in-process broker or a Redis that answers PING."""
    broker: Any = get_broker()
    client = getattr(broker, "client", None)
    if client is None:
        return "ok"
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        return f"error: {type(exc).__name__}"
    return "ok"


@router.get("/healthz", summary="Database and broker reachable")
def healthz() -> JSONResponse:
    """200 {"status": "ok", ...} or 503 {"status": "unavailable", ...}."""
    checks = {"database": check_database(), "broker": check_broker()}
    healthy = all(value == "ok" for value in checks.values())
    if not healthy:
        log.warning("health check failed %s", " ".join(f"{k}={v}" for k, v in checks.items()))
    body = {"status": "ok" if healthy else "unavailable", **checks}
    return JSONResponse(body, status_code=200 if healthy else 503)
