"""Provider callbacks over HTTP: read the request, verify + parse through the provider
registry, apply in automation.feedback.callbacks, answer.

One route per ``CallbackRoute`` of automation.delivery.providers (see each unit for its
path and authentication). Unsigned or mis-signed calls get 401 and store nothing; a
signed call about a message we do not know gets 200 with ``{"status": "ignored"}`` and
a log line, so providers stop retrying. A signed call whose ids cannot be stored or looked
up (a Unicode digit, beyond BIGINT, a NUL character, over 200 characters) gets 422
naming the field, and stores nothing.

A route with an ``Inbox`` (a provider that must be answered within seconds) is stored
raw in the inbox after the signature check, through the webhooks' group committer, and
answered 200 ``{"status": "ok", "inbox_ids": [...], "duplicate": ...}`` at once; the
inbox worker (or the scheduler's inbox pass) applies it. A retry of the same event is
stored once. An unreachable database answers 503 (automation.ingest.unavailable).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError

from automation.core.config import get_settings
from automation.core.db import session_scope
from automation.core.models import MAX_ROW_ID
from automation.delivery.providers import ROUTES
from automation.delivery.providers.base import CallbackRoute, Inbox
from automation.feedback.callbacks import apply
from automation.feedback.results import dispatch_events
from automation.inbox.callbacks import edge_delivery, nothing_to_apply
from automation.ingest.sources.base import lowered
from automation.ingest.webhooks import committer
from channels.callback import CallbackRejected, CallbackRequest, CallbackResult

log = logging.getLogger(__name__)
router = APIRouter(prefix="/callbacks", tags=["callbacks"])
#: Longest id we store or look up (message_events.provider_event_id, provider_message_id).
MAX_ID_CHARS = 200
RETRY_AFTER_SECONDS = 30
_ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            }
        }
    }
}
#: The answers every callback route may give (declared in the OpenAPI schema).
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "applied, duplicate, or ignored (a message we do not know)"},
    400: {**_ERROR, "description": "body is not the provider's format"},
    401: {**_ERROR, "description": "missing or wrong signature, or the secret is not set"},
    403: {**_ERROR, "description": "subscription check with a wrong verify token"},
    404: {**_ERROR, "description": "unknown route"},
    413: {**_ERROR, "description": "body over MAX_BODY_BYTES"},
    422: {**_ERROR, "description": "an id we cannot store or look up, named in the message"},
    503: {**_ERROR, "description": "database unavailable; retry after Retry-After seconds"},
}


def _invalid(field: str, problem: str) -> CallbackRejected:
    return CallbackRejected(422, "invalid_callback", f"{field} {problem}")


def check_id(field: str, value: str, row_id: bool = False) -> None:
    """Refuse an id we could not store or look up; ``row_id``: digits must fit a BIGINT."""
    if "\x00" in value:
        raise _invalid(field, "contains a NUL character")
    if len(value) > MAX_ID_CHARS:
        raise _invalid(field, f"is {len(value)} characters; at most {MAX_ID_CHARS}")
    if row_id and value.strip().isdigit():
        digits = value.strip()
        if not digits.isascii() or int(digits) > MAX_ROW_ID:
            raise _invalid(field, f"{digits[:24]!r} is not a message id (1..{MAX_ROW_ID})")


def check_results(results: Iterable[CallbackResult]) -> None:
    """422 for a parsed result whose ids or payload the database cannot take."""
    for result in results:
        for ours in result.message_ids:
            check_id("message id", ours, row_id=True)
        named = [("provider message id", theirs) for theirs in result.provider_ids]
        named += [("event id", result.event_id), ("user id", result.user_id or "")]
        named += [("address", result.address or "")]
        for field, value in named:
            check_id(field, value)
        for field, data in (("payload", result.payload), ("properties", result.properties)):
            if "\\u0000" in json.dumps(data, default=str):
                raise _invalid(field, "contains a NUL character")


def _check_path(request: CallbackRequest) -> None:
    """A message id in the path is ASCII digits that fit a BIGINT."""
    raw = request.path_params.get("message_id")
    fits = raw is not None and raw.isascii() and raw.isdigit() and len(raw) <= 19
    if raw is not None and not (fits and 0 < int(raw) <= MAX_ROW_ID):
        raise CallbackRejected(
            422, "invalid_path", f"message id in the path must be a number 1..{MAX_ROW_ID}"
        )


def _reject(exc: CallbackRejected) -> JSONResponse:
    log.warning("callback rejected: %s %s", exc.error, exc.message)
    return JSONResponse({"error": exc.error, "message": exc.message}, status_code=exc.status)


async def _read(request: Request) -> CallbackRequest:
    """The neutral request: public URL, query, lower-case headers, size-limited body."""
    settings = get_settings()
    body = await request.body()
    if len(body) > settings.max_body_bytes:
        raise CallbackRejected(
            413, "body_too_large", f"body is larger than {settings.max_body_bytes} bytes"
        )
    url = settings.public_base_url.rstrip("/") + request.url.path
    if request.url.query:
        url += "?" + request.url.query
    return CallbackRequest(
        url=url,
        query=dict(request.query_params),
        headers=lowered(request.headers),
        body=body,
        path_params={k: str(v) for k, v in request.path_params.items()},
    )


async def _store(inbox: Inbox, body: bytes, results: list[CallbackResult]) -> JSONResponse:
    """Store a verified callback in the inbox (once per event) and answer; apply later."""
    if nothing_to_apply(results):
        return JSONResponse({"status": "ignored", "inbox_ids": [], "duplicate": False})
    recorded = await committer(get_settings()).store([edge_delivery(inbox, body)])
    return JSONResponse(
        {"status": "ok", "inbox_ids": recorded.ids, "duplicate": recorded.duplicate}
    )


def _endpoint(route: CallbackRoute) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            received = await _read(request)
            _check_path(received)
            answer = route.handle(received, get_settings())
            if not isinstance(answer, str):
                check_results(answer)
        except CallbackRejected as exc:
            return _reject(exc)
        if isinstance(answer, str):
            return PlainTextResponse(answer)
        if route.inbox is not None:
            return await _store(route.inbox, received.body, answer)
        try:
            with session_scope() as session:
                outcome = apply(session, route.provider, answer)
        except (OperationalError, InterfaceError):
            log.warning("callback not stored: database unavailable", extra={"failure_key": "db"})
            return JSONResponse(
                {"error": "database_unavailable", "message": "try again later"},
                status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        dispatch_events(outcome.event_ids)
        ignored = outcome.ignored and not (outcome.applied or outcome.duplicates)
        return JSONResponse({"status": "ignored" if ignored else "ok", **outcome.answer()})

    endpoint.__doc__ = route.handle.__doc__
    return endpoint


for _route in ROUTES:
    router.add_api_route(
        _route.path,
        _endpoint(_route),
        methods=[_route.method],
        name=f"{_route.provider}_{_route.method.lower()}_callback",
        responses=RESPONSES,
        openapi_extra=_route.openapi,
    )
