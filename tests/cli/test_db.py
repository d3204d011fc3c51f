"""`mactl db upgrade|current` on a fresh SQLite file, and settings errors as one line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from admin_cli.main import app
from automation.core.config import get_settings
from automation.core.db import dispose_all

runner = CliRunner()


@pytest.fixture
def fresh_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "fresh.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{path}")
    monkeypatch.delenv("REDIS_URL", raising=False)
    get_settings.cache_clear()
    dispose_all()
    yield path
    get_settings.cache_clear()
    dispose_all()


def test_db_upgrade_on_fresh_sqlite(fresh_env: Path) -> None:
    before = runner.invoke(app, ["db", "current", "--json"])
    assert before.exit_code == 0
    assert json.loads(before.stdout)["current"] is None

    result = runner.invoke(app, ["db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("database at ")
    engine = sa.create_engine(f"sqlite:///{fresh_env}")
    tables = set(sa.inspect(engine).get_table_names())
    engine.dispose()
    assert {"contacts", "events", "messages", "enrollments", "alembic_version"} <= tables

    state = json.loads(runner.invoke(app, ["db", "current", "--json"]).stdout)
    assert state["up_to_date"] is True and state["current"] == state["head"]
    again = runner.invoke(app, ["db", "upgrade"])
    assert again.exit_code == 0


def test_missing_tables_is_one_line(fresh_env: Path) -> None:
    result = runner.invoke(app, ["events", "list"])
    assert result.exit_code == 2
    assert "mactl db upgrade" in result.stderr and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("DATABASE_URL", "mysql://x", "DATABASE_URL"),
        ("REDIS_URL", "http://x", "REDIS_URL"),
        ("DEFAULT_TIMEZONE", "Mars/Base", "DEFAULT_TIMEZONE"),
    ],
)
def test_settings_error_is_one_line(
    fresh_env: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    for args in (["db", "upgrade"], ["contacts", "show", "1"], ["run"], ["worker"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.count("\n") == 1, result.stderr
        assert expected in result.stderr and "configuration error" in result.stderr
        assert "Traceback" not in result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)


def test_unreachable_or_unmigrated_database_is_one_line(
    monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    import uuid

    monkeypatch.setenv("SECRET_KEY", "test-secret-key-0123456789abcdef")
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    get_settings.cache_clear()
    dispose_all()
    down = runner.invoke(app, ["events", "list"])
    assert down.exit_code == 2 and "check DATABASE_URL" in down.stderr
    assert down.stderr.count("\n") == 1

    name = f"ma_empty_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        monkeypatch.setenv("DATABASE_URL", postgres_url.rsplit("/", 1)[0] + f"/{name}")
        get_settings.cache_clear()
        empty = runner.invoke(app, ["contacts", "show", "lan@example.vn"])
        assert empty.exit_code == 2 and "mactl db upgrade" in empty.stderr
        assert "Traceback" not in empty.output
    finally:
        dispose_all()
        get_settings.cache_clear()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
