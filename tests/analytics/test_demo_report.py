"""`mactl demo` ends with the report, fitting an 80-column terminal."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from admin_cli.main import app
from automation.core.config import get_settings

runner = CliRunner()


def test_demo_ends_with_the_report_in_80_columns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    get_settings.cache_clear()
    result = runner.invoke(
        app,
        ["demo", "--contacts", "40", "--days", "7", "--seed", "7",
         "--database-url", f"sqlite:///{tmp_path / 'demo.db'}",
         "--outbox", str(tmp_path / "outbox.jsonl")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "What each sequence did" not in text  # the old 9-column table is gone
    for part in ("Sequences", "lead_capture: steps", "Deliverability by channel", "total:"):
        assert part in text, text
    for key in ("lead_capture", "order_status", "cart_recovery"):
        assert f"\n {key} " in text, f"{key} broken across lines:\n{text}"
    assert "mactl report --html" in text
