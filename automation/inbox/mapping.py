"""Raw delivery -> canonical events: pure functions shared by the edge and the worker.

The edge runs them in memory to validate (native: 422; shops: quarantine), to find the
dedupe key and to answer "ignored"; the worker runs them again from the stored raw body
and writes the result. Both get the same events, so the keys agree. `check_shape` makes
mapping total: whatever it accepts fits the tables, so a mapped delivery never fails
later for its shape.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from automation.core import jsoncodec
from automation.core.events import CanonicalEvent
from automation.ingest.sources import SOURCES, PayloadError, Source
from automation.ingest.sources.base import MAX_ID, Ignored, stable_key
from automation.ingest.sources.base import Delivery as HeaderDelivery

KEY_LENGTH = 200  # inbox.dedupe_key and events.source_event_id
TOPIC_LENGTH = 128
# headers worth keeping with a delivery (diagnostics); signatures are never stored
HEADER_PREFIXES = ("x-shopify-", "shopify-", "x-haravan-", "x-sapo-", "x-wc-webhook-",
                   "x-event-")
CONTACT_LIMITS = {
    "external_id": MAX_ID, "email": 320, "phone": 20, "zalo_user_id": 64,
    "facebook_psid": 64, "first_name": 120, "last_name": 120, "locale": 16, "timezone": 64,
}
PROPERTY_LIMITS = {"order_id": MAX_ID, "cart_id": MAX_ID,
                   "checkout_token": MAX_ID, "currency": 3}


@dataclass
class Delivery:
    """One row to insert into the inbox (pending, or quarantined with its reason)."""

    source: str
    topic: str
    dedupe_key: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    status: str = "pending"
    reason: str | None = None


def source_named(name: str) -> Source:
    """The registered source for a stored delivery's `source` column."""
    return SOURCES[name]


def kept_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The platform's own headers minus signatures, each value cut to 200 characters."""
    kept = {}
    for name, value in headers.items():
        lower = name.lower()
        if lower.startswith(HEADER_PREFIXES) and "hmac" not in lower and "signature" not in lower:
            kept[lower] = value[:200]
    return kept


def map_payload(
    source: Source,
    topic: str,
    headers: Mapping[str, str],
    payload: Any,
    stored_key: str | None = None,
) -> list[CanonicalEvent]:
    """Canonical events of one decoded payload, keyed by the platform's headers, shape-checked.

    Raises PayloadError (bad or oversized field) or Ignored (nothing we act on, a test
    delivery). ``stored_key`` (a stored inbox row's key) replaces the keys, so the worker
    maps a stored delivery to the same events as the edge did.
    """
    events = source.map(headers, payload, topic)
    for index, event in enumerate(events):
        if stored_key:
            key = stored_key if len(events) == 1 else f"{stored_key}:{index}"
            event.source_event_id = stable_key(key)
        check_shape(event, f"events[{index}]." if len(events) > 1 else "")
    return events


def check_shape(event: CanonicalEvent, where: str = "") -> None:
    """PayloadError naming the first value that would not fit its column."""
    for name, limit in CONTACT_LIMITS.items():
        value = getattr(event.contact, name)
        if isinstance(value, str) and len(value) > limit:
            raise PayloadError(f"{where}contact.{name}", f"is longer than {limit} characters")
    for name, limit in PROPERTY_LIMITS.items():
        value = event.properties.get(name)
        if isinstance(value, str) and len(value) > limit:
            raise PayloadError(f"{where}properties.{name}", f"is longer than {limit} characters")


def stored_raw(source: Source, delivery: HeaderDelivery) -> bool:
    """True when the request path stores the delivery unmapped (a shop delivery naming
    itself by the platform's delivery id): its payload is then only checked to be JSON."""
    return bool(delivery.key) and not source.refuse_invalid


def edge_deliveries(
    source: Source,
    topic: str,
    headers: Mapping[str, str],
    body: bytes,
    payload: Any,
    delivery: HeaderDelivery | None = None,
) -> list[Delivery]:
    """What the request path stores: one delivery per event (native batches: per item).

    A shop delivery that names itself (the platform's delivery id header) is stored raw,
    unmapped: the worker maps it and quarantines or ignores what fails, so the request
    path never pays for mapping (a third of its CPU). Otherwise the payload is mapped
    here: for the dedupe key when no header gives one, and for native events, which are
    refused when they fail (PayloadError propagates: 422); a shop payload that fails is
    stored quarantined with the reason. Ignored (a test delivery) propagates.
    ``delivery``: what the headers say, when the caller has read it already.
    """
    delivery = delivery or source.delivery(headers)
    if delivery.test:
        raise Ignored("test delivery")
    delivery_id = delivery.key
    kept = kept_headers(headers)
    topic = topic[:TOPIC_LENGTH]
    if delivery_id and stored_raw(source, delivery):
        return [Delivery(source.name, topic, stable_key(delivery_id), body, kept)]
    try:
        events = map_payload(source, topic, headers, payload)
    except PayloadError as exc:
        if source.refuse_invalid:
            raise
        key = stable_key(delivery_id) if delivery_id and delivery_id.strip() else (
            "sha256:" + hashlib.sha256(topic.encode() + b"\n" + body).hexdigest())
        return [Delivery(source.name, topic, key, body, kept, "quarantined", str(exc))]
    if not (source.batched and isinstance(payload, dict) and "events" in payload):
        key = stable_key(delivery_id) if delivery_id and delivery_id.strip() else (
            events[0].source_event_id)
        return [Delivery(source.name, topic, key, body, kept)]
    items = payload["events"]
    return [
        Delivery(source.name, topic, event.source_event_id,
                 json.dumps(item, ensure_ascii=False).encode(), kept)
        for event, item in zip(events, items, strict=True)
    ]


def stored_events(
    source_name: str, topic: str, dedupe_key: str, body: bytes, headers: Mapping[str, str]
) -> list[CanonicalEvent]:
    """Map a stored delivery again (the worker): same events as at the edge."""
    return map_payload(source_named(source_name), topic, headers, jsoncodec.loads(body), dedupe_key)
