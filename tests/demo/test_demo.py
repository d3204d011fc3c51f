"""`mactl demo` on a small shop: every playbook enrols, sends and converts someone."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from admin_cli.main import app
from automation.core import clock
from automation.core.config import get_settings

SEQUENCES = ("lead_capture", "nurture", "cart_recovery", "order_status", "winback")
runner = CliRunner()


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    """The demo sets its own environment; make sure nothing of the test's leaks in."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.delenv("OUTBOX_FILE", raising=False)
    get_settings.cache_clear()


def test_small_demo_runs_every_playbook(tmp_path: Path, isolated: None) -> None:
    outbox = tmp_path / "outbox.jsonl"
    before = clock.now()
    result = runner.invoke(
        app,
        [
            "demo", "--contacts", "60", "--days", "10", "--seed", "7", "--json",
            "--database-url", f"sqlite:///{tmp_path / 'demo.db'}", "--outbox", str(outbox),
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["contacts"] >= 55 and summary["days"] == 10
    for key in SEQUENCES:
        data = summary["sequences"][key]
        assert data["enrolled"] > 0, f"{key} enrolled no one"
        assert data["sent"] > 0, f"{key} sent nothing"
    assert sum(s["conversions"] for s in summary["sequences"].values()) > 0
    assert summary["sequences"]["cart_recovery"]["exits"].get("converted", 0) > 0
    assert summary["carts_abandoned"] > 0

    lines = outbox.read_text(encoding="utf-8").splitlines()
    assert len(lines) >= sum(s["sent"] for s in summary["sequences"].values())
    text = "\n".join(lines)
    assert "Giỏ hàng" in text or "giỏ hàng" in text  # Vietnamese with diacritics, as sent

    # the demo restores the process clock and settings
    assert clock.now() >= before and clock.now().year == before.year
    assert get_settings().database_url != f"sqlite:///{tmp_path / 'demo.db'}"


def test_demo_is_deterministic_for_a_seed(tmp_path: Path, isolated: None) -> None:
    from demo.simulate import DemoOptions, run_demo

    def run(name: str) -> dict[str, object]:
        summary = run_demo(
            DemoOptions(contacts=20, days=3, seed=3,
                        database_url=f"sqlite:///{tmp_path / name}.db",
                        outbox_file=str(tmp_path / f"{name}.jsonl"))
        )  # fmt: skip
        return {k: summary[k] for k in ("contacts", "orders", "events", "sequences", "channels")}

    assert run("a") == run("b")


def test_time_based_segments_catch_up_every_segment_refresh(
    tmp_path: Path, isolated: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not on every hourly pass: days-long windows need no hourly whole-base refresh."""
    from demo.simulate import SEGMENT_REFRESH, demo_environment

    monkeypatch.setenv("SEGMENT_REFRESH_MINUTES", "15")
    with demo_environment(f"sqlite:///{tmp_path / 'd.db'}", str(tmp_path / "o.jsonl")):
        assert timedelta(minutes=get_settings().segment_refresh_minutes) == SEGMENT_REFRESH
    assert get_settings().segment_refresh_minutes == 15  # restored
