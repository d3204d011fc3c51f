"""503 with Retry-After when the database cannot be reached (shops and providers retry).

Registered on the app for SQLAlchemy's OperationalError and InterfaceError (connection
refused, server gone, SQLite locked): one structured log line, no traceback, JSON body.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError

log = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 30
UNREACHABLE = (OperationalError, InterfaceError)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """The answer to a request that failed because the database is unreachable."""
    log.error(
        "database unavailable path=%s error=%s",
        request.url.path,
        type(exc).__name__,
        extra={"path": request.url.path, "error": type(exc).__name__},
    )
    return JSONResponse(
        {
            "error": "database_unavailable",
            "message": "the database is unreachable; nothing was stored",
            "fix": f"retry after {RETRY_AFTER_SECONDS} seconds",
        },
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install(app: FastAPI) -> None:
    """Answer 503 for database connection errors on every route of `app`."""
    for error in UNREACHABLE:
        app.add_exception_handler(error, database_unavailable)
