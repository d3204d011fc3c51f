"""Fixtures for sequence tests."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from sqlalchemy.orm import Session

from automation.core.config import Settings
from automation.core.db import session_factory
from automation.runtime.scheduler import run_pass


@pytest.fixture
def scheduler(settings: Settings) -> Callable[[datetime], dict[str, int]]:
    """Run one scheduler pass as of a time, with fresh sessions."""

    def run(now: datetime) -> dict[str, int]:
        factory: Callable[[], Session] = session_factory(settings)
        return run_pass(factory, now)

    return run
