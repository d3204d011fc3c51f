"""Provider callbacks over HTTP: read the request, verify + parse through the provider
registry, apply in automation.feedback.callbacks, answer.

One route per ``CallbackRoute`` of automation.delivery.providers (see each unit for its
path and authentication). Unsigned or mis-signed calls get 401 and store nothing; a
signed call about a message we do not know gets 200 with ``{"status": "ignored"}`` and
a log line, so providers stop retrying.

A route with an ``Inbox`` (a provider that must be answered within seconds) is stored
raw in the inbox after the signature check, through the webhooks' group committer, and
answered 200 ``{"status": "ok", "inbox_ids": [...], "duplicate": ...}`` at once; the
inbox worker (or the scheduler's inbox pass) applies it. A retry of the same event is
stored once. An unreachable database answers 503 (automation.ingest.unavailable).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from automation.core.config import get_settings
from automation.core.db import session_scope
from automation.delivery.providers import ROUTES
from automation.delivery.providers.base import CallbackRoute, Inbox
from automation.feedback.callbacks import apply
from automation.feedback.results import dispatch_events
from automation.inbox.callbacks import edge_delivery, nothing_to_apply
from automation.ingest.webhooks import committer
from channels.callback import CallbackRejected, CallbackRequest, CallbackResult

log = logging.getLogger(__name__)
router = APIRouter(prefix="/callbacks", tags=["callbacks"])


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
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        path_params={k: str(v) for k, v in request.path_params.items()},
    )


async def _store(inbox: Inbox, body: bytes, results: list[CallbackResult]) -> JSONResponse:
    """Store a verified callback in the inbox (once per event) and answer; apply later."""
    if nothing_to_apply(results):
        return JSONResponse({"status": "ignored", "inbox_ids": [], "duplicate": False})
    future = committer(get_settings()).submit([edge_delivery(inbox, body)])
    recorded = await asyncio.wrap_future(future)
    return JSONResponse(
        {"status": "ok", "inbox_ids": recorded.ids, "duplicate": recorded.duplicate}
    )


def _endpoint(route: CallbackRoute) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        try:
            callback = await _read(request)
            answer = route.handle(callback, get_settings())
        except CallbackRejected as exc:
            return _reject(exc)
        if isinstance(answer, str):
            return PlainTextResponse(answer)
        if route.inbox is not None:
            return await _store(route.inbox, callback.body, answer)
        with session_scope() as session:
            outcome = apply(session, route.provider, answer)
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
    )
