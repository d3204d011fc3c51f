"""Prometheus metrics for ingest, and GET /metrics."""

from __future__ import annotations

import functools

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

WEBHOOKS = Counter(
    "webhooks_received_total",
    "Webhook requests by source and outcome",
    ["source", "outcome"],
)
EVENTS_STORED = Counter("events_stored_total", "Canonical events stored, by source", ["source"])
LATENCY = Histogram(
    "webhook_duration_seconds",
    "Time to answer a webhook request",
    ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
ENQUEUE_FAILURES = Counter(
    "event_enqueue_failures_total", "Stored events whose processing message could not be sent"
)

router = APIRouter(tags=["operations"])


@functools.cache
def _children(source: str, outcome: str) -> tuple[Counter, Histogram]:
    """The labelled series of one (source, outcome), looked up once (labels() takes a lock
    and builds a key on every call)."""
    return WEBHOOKS.labels(source=source, outcome=outcome), LATENCY.labels(source=source)


@functools.cache
def _stored(source: str) -> Counter:
    """The events_stored_total series of one source, looked up once."""
    return EVENTS_STORED.labels(source=source)


def count_stored(source: str, count: int) -> None:
    """Count `count` events stored from `source`."""
    _stored(source).inc(count)


def observe(source: str, outcome: str, seconds: float) -> None:
    """Count one webhook request and record its latency."""
    requests, latency = _children(source, outcome)
    requests.inc()
    latency.observe(seconds)


@router.get("/metrics", response_class=Response, summary="Prometheus metrics")
def metrics() -> Response:
    """Prometheus text exposition of this process's metrics."""
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
