"""Webhook routes: verify, validate cheaply, store the raw delivery once, answer.

Synchronous checks (refused with 4xx; nothing stored): size -> 413; WooCommerce's
unsigned ping -> 200; secret configured -> else 503 naming the variable; signature (and
for native events the replay window) -> 401; topic header present -> 422; topic known ->
else 202 ignored; JSON well-formed (syntax, UTF-8, nesting depth, integer size, no NUL
character) -> 422 naming the problem. A shop delivery with the platform's delivery id
is then stored raw (the worker maps it and quarantines what fails: a shop cannot fix a
payload and drops or disables a failing webhook); native events, and shop deliveries
without that id, are mapped in memory first (automation.inbox.mapping.edge_deliveries):
native events that fail are refused with 422 naming the field, such shop deliveries are
stored quarantined with the reason and answered 202.
Finally ONE INSERT ... ON CONFLICT DO NOTHING into the inbox, committed together with
concurrent requests (automation.inbox.committer), and the answer; a redelivery answers
200 duplicate. Contacts, consents, events and rollups are written
later by the worker from the stored row (the scheduler maps rows left pending).
"""

from __future__ import annotations

import json
import logging
import re
import time
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, TypeAdapter

from automation.core import clock, jsoncodec
from automation.core.config import Settings, get_settings
from automation.core.db import session_factory
from automation.inbox.committer import GroupCommitter
from automation.inbox.mapping import edge_deliveries, stored_raw
from automation.ingest import signatures
from automation.ingest.metrics import ENQUEUE_FAILURES, count_stored, observe
from automation.ingest.sources import (
    HARAVAN,
    NATIVE,
    SAPO,
    SHOPIFY,
    WOOCOMMERCE,
    NativeSource,
    PayloadError,
    Source,
    WooCommerceSource,
)
from automation.ingest.sources.base import Ignored, LoweredHeaders, raw_lowered
from automation.ingest.sources.native import NativeBatch, NativeEvent

log = logging.getLogger(__name__)
router = APIRouter(prefix="/webhooks", tags=["webhooks"])
MAX_DEPTH = 64
NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")  # an unescaped \u0000 escape
COMMITTERS: dict[str, GroupCommitter] = {}
ENQUEUE_CHUNK = 100
PING = re.compile(rb"webhook_id=\d+")
REF_TEMPLATE = "#/components/schemas/{model}"
NATIVE_SCHEMA = TypeAdapter(NativeEvent | NativeBatch).json_schema(ref_template=REF_TEMPLATE)


class Accepted(BaseModel):
    """202: deliveries stored in the inbox (new ones) and queued for mapping.

    `quarantined` counts stored deliveries whose payload could not be mapped (`reason`).
    """

    accepted: int
    inbox_ids: list[int]
    duplicates: int = 0
    quarantined: int = 0
    reason: str | None = None


class Duplicate(BaseModel):
    """200: every delivery of this request was already stored (a redelivery)."""

    duplicate: bool = True
    inbox_ids: list[int]


class ErrorBody(BaseModel):
    """4xx/5xx: what is wrong and how to fix it."""

    error: str
    message: str
    field: str | None = None
    fix: str | None = None


class Rejected(Exception):
    """A request we refuse; nothing is stored."""

    def __init__(self, status: int, outcome: str, body: dict[str, Any]) -> None:
        super().__init__(body.get("message", outcome))
        self.status, self.outcome, self.body = status, outcome, body


def too_large(limit: int) -> Rejected:
    """413 naming the limit."""
    return Rejected(
        413,
        "too_large",
        {"error": "payload_too_large", "message": f"body is larger than {limit} bytes"},
    )


async def read_body(request: Request, headers: LoweredHeaders, limit: int) -> bytes:
    """The raw body, refusing more than `limit` bytes by Content-Length and by counting."""
    declared = headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def answer(body: dict[str, Any], status: int = 200) -> Response:
    """A JSON response serialized by orjson (compact, like JSONResponse's, at a fifth of
    the cost)."""
    return Response(orjson.dumps(body), status, media_type="application/json")


def secret_for(source: Source) -> str:
    """The configured secret, or 503 naming the environment variable to set."""
    value = getattr(get_settings(), source.secret_setting.lower(), None)
    if not value:
        raise Rejected(
            503,
            "unconfigured",
            {
                "error": "source_not_configured",
                "message": f"set {source.secret_setting} to accept {source.name} webhooks",
                "field": source.secret_setting,
            },
        )
    return str(value)


def verify(source: Source, headers: LoweredHeaders, secret: str, body: bytes) -> None:
    """Signature check per source; 401 on failure."""
    try:
        if isinstance(source, NativeSource):
            signatures.verify_native(
                secret,
                body,
                headers.get("x-signature"),
                headers.get("x-timestamp"),
                clock.now().timestamp(),
                get_settings().replay_window_seconds,
            )
        else:
            header = source.signature_header
            signatures.verify_base64_hmac(secret, body, source.signature(headers), header)
    except signatures.SignatureError as exc:
        raise Rejected(401, "unauthorized", {"error": exc.error, "message": exc.message}) from None


def invalid_json(message: str) -> Rejected:
    """422 naming the body: the request is not JSON we can read safely."""
    return Rejected(
        422,
        "invalid",
        {
            "error": "invalid_json",
            "field": "body",
            "message": message,
            "fix": "send the raw JSON document with Content-Type: application/json",
        },
    )


def decode(body: bytes, exact: bool = True) -> Any:
    """JSON body, or 422: syntax (with its position), nesting, huge integers, NUL.

    jsoncodec.loads decodes (orjson, or the standard library for what orjson refuses or would
    read as a lossy float); its errors are told as 422 naming the body. ``exact=False``
    when only the validity matters (integers beyond 64 bits may come back rounded).
    """
    payload = parse_body(body, exact)
    if body.count(b"[") + body.count(b"{") > MAX_DEPTH and too_deep(payload, MAX_DEPTH):
        raise invalid_json(f"body is nested deeper than {MAX_DEPTH} levels")
    if b"\\u0000" in body and NUL.search(body):
        raise invalid_json("body holds a NUL character (\\u0000); remove it")
    return payload


def parse_body(body: bytes, exact: bool = True) -> Any:
    """jsoncodec.loads, its errors told as 422 naming the body."""
    try:
        return jsoncodec.loads(body, exact)
    except json.JSONDecodeError as exc:
        where = f" at line {exc.lineno} column {exc.colno}"
        raise invalid_json(f"body is not valid UTF-8 JSON{where}") from None
    except UnicodeDecodeError:
        raise invalid_json("body is not valid UTF-8 JSON") from None
    except RecursionError:
        raise invalid_json(f"body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:  # an integer of more than 4,300 digits
        raise invalid_json("body holds a number too large to read") from None


def too_deep(value: Any, limit: int) -> bool:
    """True when arrays/objects nest deeper than `limit` (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def enqueue(ids: list[int]) -> None:
    """Queue mapping for stored deliveries, one message per 100 (a committed batch).

    Best effort: on a broker failure the rest is left to the scheduler's inbox pass.
    """
    from automation.runtime.actors import map_inbox_actor

    for start in range(0, len(ids), ENQUEUE_CHUNK):
        try:
            map_inbox_actor.send(ids[start : start + ENQUEUE_CHUNK])
        except Exception as exc:  # noqa: BLE001 - the deliveries are stored; never fail
            ENQUEUE_FAILURES.inc()
            log.warning("enqueue failed deliveries=%s error=%s", len(ids), type(exc).__name__)
            return  # the broker is down: do not wait on it again for this batch


def committer(settings: Settings) -> GroupCommitter:
    """This process's group committer for the configured database."""
    found = COMMITTERS.get(settings.database_url)
    if found is None:
        found = COMMITTERS.setdefault(
            settings.database_url, GroupCommitter(session_factory(settings), enqueue)
        )
    return found


async def close_committers() -> None:
    """Close the running loop's PostgreSQL committer connections (the app shuts down)."""
    for found in list(COMMITTERS.values()):
        await found.close_loop()


async def ingest(request: Request, source: Source) -> tuple[Response, str, str]:
    """Run one webhook request through every check; returns (response, outcome, topic)."""
    settings = get_settings()
    headers = raw_lowered(request.scope["headers"])
    body = await read_body(request, headers, settings.max_body_bytes)
    delivery = source.delivery(headers)
    topic = delivery.topic
    if (
        isinstance(source, WooCommerceSource)
        and not topic
        and not source.signature(headers)
        and PING.fullmatch(body.strip())
    ):
        return answer({"ok": True, "ping": True}), "ping", "ping"
    verify(source, headers, secret_for(source), body)
    if source.topic_header and not topic:
        raise Rejected(
            422,
            "invalid",
            {
                "error": "missing_topic",
                "field": source.topic_header,
                "message": f"header {source.topic_header} is required",
            },
        )
    if not source.handles(topic):
        return ignored(topic, "unknown topic"), "ignored", topic
    payload = decode(body, exact=not stored_raw(source, delivery))
    try:
        deliveries = edge_deliveries(source, topic, headers, body, payload, delivery)
    except PayloadError as exc:
        error = {"error": "invalid_payload", "field": exc.field, "message": exc.message}
        raise Rejected(422, "invalid", {**error, "fix": exc.fix}) from None
    except Ignored as exc:
        return ignored(topic, str(exc)), "ignored", topic
    del payload  # hundreds of objects: freed now, not kept (and scanned by gc) over the wait
    result = await committer(settings).store(deliveries)
    if result.duplicate:
        return answer({"duplicate": True, "inbox_ids": result.ids}), "duplicate", topic
    count_stored(source.name, len(result.new_ids))
    accepted: dict[str, Any] = {
        "accepted": len(result.new_ids),
        "inbox_ids": result.ids,
        "duplicates": len(result.ids) - len(result.new_ids),
    }
    outcome = "accepted"
    if result.quarantined:
        outcome = "quarantined"
        reasons = [d.reason for d in deliveries if d.reason]
        accepted.update(quarantined=result.quarantined, reason=reasons[0] if reasons else None)
    return answer(accepted, 202), outcome, topic


def ignored(topic: str, reason: str) -> Response:
    """202 for a valid request we do not act on."""
    return answer({"accepted": 0, "ignored": True, "reason": reason, "inbox_ids": []}, 202)


async def handle(request: Request, source: Source) -> Response:
    """ingest() with the error mapping, metrics and one structured log line without PII."""
    started = time.perf_counter()
    topic = ""
    try:
        response, outcome, topic = await ingest(request, source)
    except Rejected as exc:
        response, outcome = answer(exc.body, exc.status), exc.outcome
        topic = source.delivery(request.headers).topic
    elapsed = time.perf_counter() - started
    observe(source.name, outcome, elapsed)
    level = logging.INFO if response.status_code < 400 else logging.WARNING
    if log.isEnabledFor(level):
        log.log(
            level,
            "webhook source=%s topic=%s outcome=%s status=%s ms=%.1f",
            source.name,
            topic[:64] or "-",
            outcome,
            response.status_code,
            elapsed * 1000,
            extra={"source": source.name, "topic": topic[:64], "outcome": outcome},
        )
    return response


def _doc(source: Source, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    headers = [source.signature_header]
    if source.topic_header:
        headers.append(source.topic_header)
    if source.delivery_header:
        headers.append(source.delivery_header)
    if isinstance(source, NativeSource):
        headers.append("X-Timestamp")
    return {
        "parameters": [
            {"name": name, "in": "header", "required": name != source.delivery_header,
             "schema": {"type": "string"}}
            for name in headers
        ],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema or {"type": "object"}}},
        },
    }


RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": Duplicate, "description": "redelivery: already stored"},
    202: {"model": Accepted, "description": "stored and queued (or ignored topic)"},
    401: {"model": ErrorBody, "description": "missing or wrong signature"},
    413: {"model": ErrorBody, "description": "body over MAX_BODY_BYTES"},
    422: {"model": ErrorBody, "description": "malformed JSON or missing field"},
    503: {"model": ErrorBody, "description": "secret not configured, or database unreachable"
          " (Retry-After)"},
}


@router.post("/shopify", status_code=202, responses=RESPONSES, openapi_extra=_doc(SHOPIFY))
async def shopify(request: Request) -> Response:
    """Shopify webhooks (orders, refunds, fulfillments, checkouts, customers)."""
    return await handle(request, SHOPIFY)


@router.post("/haravan", status_code=202, responses=RESPONSES, openapi_extra=_doc(HARAVAN))
async def haravan(request: Request) -> Response:
    """Haravan webhooks (Shopify-compatible payloads, X-Haravan-* headers)."""
    return await handle(request, HARAVAN)


@router.post("/sapo", status_code=202, responses=RESPONSES, openapi_extra=_doc(SAPO))
async def sapo(request: Request) -> Response:
    """Sapo webhooks (Shopify-compatible payloads, X-Sapo-* headers)."""
    return await handle(request, SAPO)


@router.post(
    "/woocommerce", status_code=202, responses=RESPONSES, openapi_extra=_doc(WOOCOMMERCE)
)
async def woocommerce(request: Request) -> Response:
    """WooCommerce webhooks (order.*, customer.*) and its unsigned creation ping."""
    return await handle(request, WOOCOMMERCE)


@router.post(
    "/events",
    status_code=202,
    responses=RESPONSES,
    openapi_extra=_doc(NATIVE, {k: v for k, v in NATIVE_SCHEMA.items() if k != "$defs"}),
)
async def native_events(request: Request) -> Response:
    """Native events: one event or {"events": [...]} (max 1000), signed with a timestamp."""
    return await handle(request, NATIVE)


PATHS = {
    "/webhooks/shopify": SHOPIFY,
    "/webhooks/haravan": HARAVAN,
    "/webhooks/sapo": SAPO,
    "/webhooks/woocommerce": WOOCOMMERCE,
    "/webhooks/events": NATIVE,
}  # served by automation.ingest.webhook_asgi ahead of the routes above
