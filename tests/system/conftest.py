"""System-test fixtures: a fresh PostgreSQL database per module, a private Redis DB,
loopback providers (Zalo ZNS, eSMS, SMTP) and an explicit environment for `mactl`.

Redis: SYSTEM_TEST_REDIS_URL (default db 13, flushed), so the system tests never touch
the database number the unit tests use. With CI=true a missing service fails.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.system.procs import SECRETS, LoopbackProvider, Providers, base_env, start_smtp

PG_ADMIN_URL = os.environ.get(
    "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SYSTEM_REDIS_URL = os.environ.get("SYSTEM_TEST_REDIS_URL", "redis://127.0.0.1:6379/13")


def _missing(what: str, exc: Exception) -> None:
    message = f"{what} is not reachable: {exc}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def pg_db() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test module (`mactl db upgrade` creates
    the tables); dropped afterwards."""
    name = f"ma_sys_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001
        admin.dispose()
        _missing("PostgreSQL", exc)
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="module")
def pg_engine(pg_db: str) -> Iterator[sa.Engine]:
    """An engine on the module's database, for assertions on what the processes wrote."""
    engine = sa.create_engine(pg_db, poolclass=sa.pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def redis_db() -> Iterator[str]:
    """The system tests' Redis database, flushed before and after the test."""
    import redis

    client = redis.Redis.from_url(SYSTEM_REDIS_URL)
    try:
        client.ping()
    except Exception as exc:  # noqa: BLE001
        _missing("Redis", exc)
    client.flushdb()
    yield SYSTEM_REDIS_URL
    client.flushdb()
    client.close()


@pytest.fixture
def providers() -> Iterator[Providers]:
    """Loopback Zalo ZNS, eSMS and SMTP servers in the test process."""
    zns, esms, smtp = LoopbackProvider("zns"), LoopbackProvider("esms"), start_smtp()
    yield Providers(zns, esms, smtp)
    zns.close()
    esms.close()
    smtp.close()


@pytest.fixture
def system_env(
    pg_db: str, redis_db: str, providers: Providers, tmp_path: Path
) -> dict[str, str]:
    """The environment of every `mactl` process of a PostgreSQL + Redis test."""
    return base_env(
        DATABASE_URL=pg_db,
        REDIS_URL=redis_db,
        OUTBOX_FILE=str(tmp_path / "outbox.jsonl"),
        LOG_LEVEL="INFO",
        **SECRETS,
        **providers.env(),
    )
