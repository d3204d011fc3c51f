"""create_app(): the FastAPI application (webhooks, health, metrics; others add routers)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from automation.ingest import (
    callbacks,
    haravan_verify,
    health,
    metrics,
    sms_optout,
    tracking,
    unavailable,
    webhooks,
)
from automation.ingest.webhook_asgi import WebhookShortcut
from automation.runtime import wiring
from automation.runtime.heap import freeze_startup_objects


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Start-up: freeze the start-up heap (no collector pauses on the request path).
    Shutdown: close the loop's inbox connections."""
    freeze_startup_objects()
    yield
    await webhooks.close_committers()


def create_app() -> FastAPI:
    """The HTTP app with every router and an OpenAPI schema at /openapi.json."""
    wiring.install()  # results of callbacks and tracking go to the queues once committed
    app = FastAPI(
        title="Marketing automation ingest",
        version="0.1.0",
        description="Shop webhooks and native events in; health and Prometheus metrics.",
        lifespan=lifespan,
    )
    app.include_router(webhooks.router)
    app.include_router(haravan_verify.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(callbacks.router)
    app.include_router(sms_optout.router)  # before tracking: /u/sms is not a /u/{token}
    app.include_router(tracking.router)
    unavailable.install(app)
    app.add_middleware(WebhookShortcut)  # the webhook POSTs without the routing layers
    _publish_native_schemas(app)
    return app


def _publish_native_schemas(app: FastAPI) -> None:
    """Add the native event models to components.schemas (the request body refers to them)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(webhooks.NATIVE_SCHEMA.get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
