"""Fixtures for ingest tests: an HTTP client on the app, and event processing."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

import automation.contacts.orders  # noqa: F401  registers the order/cart handler
from automation.core import processing
from automation.core.config import Settings
from automation.core.models import Event
from automation.ingest.app import create_app


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The real app over ASGI, on the test backend with the test secrets."""
    with TestClient(create_app()) as test_client:
        yield test_client


@pytest.fixture
def process(session: Session) -> Callable[[], int]:
    """Process every stored, unprocessed event in id order (what the worker does)."""

    def run() -> int:
        session.expire_all()
        ids = list(
            session.scalars(select(Event.id).where(Event.processed_at.is_(None)).order_by(Event.id))
        )
        for event_id in ids:
            processing.process_event(session, event_id)
            session.commit()
        return len(ids)

    return run
