"""Shared fixtures: real PostgreSQL, real Redis and the embedded SQLite default.

With CI=true a missing service fails the test instead of skipping it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.config import Settings, get_settings
from automation.core.db import dispose_all, session_factory
from automation.core.migrate import upgrade
from automation.core.models import Base
from automation.runtime import wiring

wiring.install()  # event handlers in their canonical order, and the outbox sinks

PG_ADMIN_URL = os.environ.get("TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
FIXTURES = Path(__file__).parent / "fixtures"
TEST_SECRETS = {
    "SHOPIFY_WEBHOOK_SECRET": "shopify-test-secret",
    "HARAVAN_WEBHOOK_SECRET": "haravan-test-secret",
    "SAPO_WEBHOOK_SECRET": "sapo-test-secret",
    "WOOCOMMERCE_WEBHOOK_SECRET": "woo-test-secret",
    "EVENTS_WEBHOOK_SECRET": "events-test-secret",
    "SECRET_KEY": "test-secret-key-0123456789abcdef",
}
# Tests that read settings without the `settings` fixture must not write a generated key file.
os.environ.setdefault("SECRET_KEY", TEST_SECRETS["SECRET_KEY"])


def service_missing(what: str, exc: Exception) -> None:
    """Fail under CI, skip on a developer machine without the service."""
    message = f"{what} is not reachable: {exc}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated to head."""
    name = f"ma_test_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        service_missing("PostgreSQL", exc)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    upgrade(url)
    yield url
    dispose_all()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A file SQLite database (the embedded default), migrated to head."""
    url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis database (db 15), flushed before use."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        service_missing("Redis", exc)
    client.flushdb()
    return REDIS_TEST_URL


def _truncate(url: str) -> None:
    engine = sa.create_engine(url)
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for table in tables:
                conn.execute(sa.text(f"DELETE FROM {table}"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> str:
    """Run a test once on the embedded default and once on PostgreSQL."""
    return str(request.param)


@pytest.fixture
def settings(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Environment for one test on the chosen backend, with empty tables."""
    url = request.getfixturevalue("postgres_url" if backend == "postgres" else "sqlite_url")
    _truncate(url)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.delenv("REDIS_URL", raising=False)
    for key, value in TEST_SECRETS.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    dispose_all()
    yield get_settings()
    get_settings.cache_clear()
    dispose_all()


@pytest.fixture
def session(settings: Settings) -> Iterator[Session]:
    """A session on the test database; the test commits what it wants others to see."""
    db = session_factory(settings)()
    yield db
    db.close()


@pytest.fixture
def frozen_clock() -> Iterator[clock.FrozenClock]:
    """A movable clock installed for the test, starting at a fixed instant."""
    fake = clock.FrozenClock(datetime(2026, 11, 2, 3, 0, tzinfo=UTC))
    previous = clock.install(fake)
    yield fake
    clock.install(previous)


def load_fixture(name: str) -> bytes:
    """Raw bytes of a vendor-published payload copied into tests/fixtures/."""
    return (FIXTURES / name).read_bytes()
