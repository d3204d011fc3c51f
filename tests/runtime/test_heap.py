"""Long-running processes freeze their start-up heap: the collector's oldest generation
no longer walks it (it paused the webhook path for tens of milliseconds)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from automation.core.config import Settings
from automation.ingest.app import create_app
from automation.runtime.heap import freeze_startup_objects


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_freeze_moves_the_live_objects_out_of_the_collectors_way(unfrozen: None) -> None:
    marker = {"alive": True}
    frozen = freeze_startup_objects()
    assert frozen == gc.get_freeze_count() > 1000
    assert not any(obj is marker for obj in gc.get_objects())  # no generation holds it


def test_the_http_app_freezes_its_heap_at_start_up(settings: Settings, unfrozen: None) -> None:
    assert gc.get_freeze_count() == 0
    with TestClient(create_app()) as client:
        assert client.get("/healthz").status_code == 200
        assert gc.get_freeze_count() > 1000
