"""Helpers for the ingest tests: signing, posting, counting rows."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core.db import session_factory
from automation.core.models import Cart, Consent, Contact, ContactIdentity, Event, Order
from automation.core.models_inbox import InboxDelivery
from automation.inbox.worker import map_pending
from automation.ingest.signatures import base64_hmac, native_signature

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
SECRETS = {
    "shopify": "shopify-test-secret",
    "haravan": "haravan-test-secret",
    "sapo": "sapo-test-secret",
    "woocommerce": "woo-test-secret",
    "events": "events-test-secret",
}
HEADERS = {  # platform -> (topic header, signature header, delivery id header)
    "shopify": ("X-Shopify-Topic", "X-Shopify-Hmac-Sha256", "X-Shopify-Webhook-Id"),
    "haravan": ("X-Haravan-Topic", "X-Haravan-Hmacsha256", None),
    "sapo": ("X-Sapo-Topic", "X-Sapo-Hmac-Sha256", None),
}
TABLES = {
    "inbox": InboxDelivery,
    "contacts": Contact,
    "identities": ContactIdentity,
    "consents": Consent,
    "events": Event,
    "orders": Order,
    "carts": Cart,
}


def run_worker() -> list[int]:
    """Map every pending inbox delivery, as the worker does after the answer."""
    session = session_factory()()
    try:
        return map_pending(session)
    finally:
        session.close()


def settled(session: Session, response: Response) -> InboxDelivery:
    """The inbox row of a 202 answer once the worker has mapped it (status, reason)."""
    assert response.status_code == 202, response.text
    run_worker()
    session.expire_all()
    row = session.get(InboxDelivery, response.json()["inbox_ids"][0])
    assert row is not None
    return row


def fixture_json(name: str) -> dict[str, Any]:
    """A vendor payload from tests/fixtures, decoded."""
    data: dict[str, Any] = json.loads((FIXTURES / name).read_bytes())
    return data


def fixture_bytes(name: str) -> bytes:
    """A vendor payload from tests/fixtures, raw."""
    return (FIXTURES / name).read_bytes()


def to_body(payload: bytes | dict[str, Any] | list[Any]) -> bytes:
    """Bytes as given, else compact JSON."""
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


def post_shop(
    client: TestClient,
    payload: bytes | dict[str, Any],
    topic: str,
    platform: str = "shopify",
    webhook_id: str | None = "auto",
    signature: str | None = "auto",
    worker: bool = True,
) -> Response:
    """POST a Shopify-family webhook signed like the platform does (then map it)."""
    body = to_body(payload)
    topic_header, sig_header, id_header = HEADERS[platform]
    headers = {"Content-Type": "application/json", topic_header: topic}
    if signature == "auto":
        signature = base64_hmac(SECRETS[platform], body)
    if signature is not None:
        headers[sig_header] = signature
    if id_header and webhook_id is not None:
        headers[id_header] = str(uuid.uuid4()) if webhook_id == "auto" else webhook_id
    return answered(client.post(f"/webhooks/{platform}", content=body, headers=headers), worker)


def post_woo(
    client: TestClient,
    payload: bytes | dict[str, Any],
    topic: str = "order.created",
    signature: str | None = "auto",
    worker: bool = True,
) -> Response:
    """POST a WooCommerce webhook (then map it)."""
    body = to_body(payload)
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
        "X-WC-Webhook-Source": "https://shop.example.vn/",
    }
    if signature == "auto":
        signature = base64_hmac(SECRETS["woocommerce"], body)
    if signature is not None:
        headers["X-WC-Webhook-Signature"] = signature
    return answered(client.post("/webhooks/woocommerce", content=body, headers=headers), worker)


def post_native(
    client: TestClient,
    payload: bytes | dict[str, Any],
    timestamp: int | None = None,
    secret: str = SECRETS["events"],
    signature: str | None = "auto",
    worker: bool = True,
) -> Response:
    """POST native events signed over f"{timestamp}." + body (then map them)."""
    body = to_body(payload)
    ts = int(time.time()) if timestamp is None else timestamp
    headers = {"Content-Type": "application/json", "X-Timestamp": str(ts)}
    if signature == "auto":
        signature = native_signature(secret, ts, body)
    if signature is not None:
        headers["X-Signature"] = signature
    return answered(client.post("/webhooks/events", content=body, headers=headers), worker)


def answered(response: Response, worker: bool) -> Response:
    """The response, after the worker mapped what the request stored (when asked)."""
    if worker:
        run_worker()
    return response


def counts(session: Session) -> dict[str, int]:
    """Rows per table (what a rejected request must leave unchanged)."""
    session.expire_all()
    return {
        name: int(session.scalar(select(func.count()).select_from(model)) or 0)
        for name, model in TABLES.items()
    }


def events_of(session: Session, type_: str | None = None) -> list[Event]:
    """Stored events, oldest first, optionally of one type."""
    session.expire_all()
    query = select(Event).order_by(Event.id)
    if type_:
        query = query.where(Event.type == type_)
    return list(session.scalars(query))


def native_event(
    id_: str, type_: str, contact: dict[str, Any], properties: dict[str, Any] | None = None,
    occurred_at: str = "2026-11-02T10:00:00+07:00",
) -> dict[str, Any]:
    """A native event dict."""
    return {
        "id": id_,
        "type": type_,
        "occurred_at": occurred_at,
        "contact": contact,
        "properties": properties or {},
    }


def store_once(factory: Any, source: str, events: list[Any]) -> Any:
    """Store mapped events the way the inbox worker does, in one committed transaction."""
    from automation.inbox.store import store_events

    with factory() as session:
        result = store_events(session, source, events)
        session.commit()
    return result


def wait_for_send(sent: list[list[int]], seconds: float = 5) -> None:
    """Wait until the committer's enqueuer thread has sent something (or ``seconds`` pass)."""
    deadline = time.monotonic() + seconds
    while not sent and time.monotonic() < deadline:
        time.sleep(0.05)
