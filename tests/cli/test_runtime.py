"""Runtime commands: worker needs Redis, scheduler options, and `mactl run` end to end."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from admin_cli.main import app
from admin_cli.runtime_cmd import parse_time
from automation.core.config import Settings
from automation.ingest.signatures import base64_hmac

runner = CliRunner()


def test_worker_without_redis_url_exits_2(settings: Settings) -> None:
    result = runner.invoke(app, ["worker"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "REDIS_URL is not set" in result.stderr and "mactl run" in result.stderr


def test_worker_with_unreachable_redis_exits_2(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automation.core.config import get_settings

    monkeypatch.setenv("REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
    get_settings.cache_clear()
    result = runner.invoke(app, ["worker"])
    assert result.exit_code == 2
    assert "not reachable" in result.stderr and "hunter2" not in result.stderr


def test_scheduler_now_must_be_iso(settings: Settings) -> None:
    result = runner.invoke(app, ["scheduler", "--once", "--now", "tomorrow"])
    assert result.exit_code == 2 and "ISO-8601" in result.stderr
    local = parse_time("2026-11-02T09:00", "Asia/Ho_Chi_Minh")
    assert local.utcoffset() is not None and local.isoformat().endswith("+07:00")
    assert parse_time("2026-11-02T02:00Z", "Asia/Ho_Chi_Minh").hour == 2


def test_scheduler_once_prints_counts(settings: Settings) -> None:
    result = runner.invoke(app, ["scheduler", "--once", "--now", "2026-11-02T09:00+07:00"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert isinstance(counts, dict) and all(isinstance(v, int) for v in counts.values())


def test_scheduler_now_does_not_leak_its_clock(settings: Settings) -> None:
    from automation.core import clock

    before = clock.now()
    result = runner.invoke(app, ["scheduler", "--once", "--now", "2020-01-01T09:00+07:00"])
    assert result.exit_code == 0, result.output
    assert clock.now() >= before  # the real clock is back, not frozen in 2020


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_mactl_run_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = _free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "REDIS_URL") and not key.endswith("_WEBHOOK_SECRET")
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'run.db'}"
    env["OUTBOX_FILE"] = str(tmp_path / "outbox.jsonl")
    env["SHOPIFY_WEBHOOK_SECRET"] = "run-test-secret"
    proc = subprocess.Popen(
        [sys.executable, "-m", "admin_cli.main", "run", "--port", str(port), "--interval", "1"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 40  # ~2 s on an idle machine; generous under load
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert health is not None, proc.stderr.read() if proc.poll() is not None else "timeout"
        assert health.status_code == 200 and health.json()["database"] == "ok"
        body = (Path(__file__).parent.parent / "fixtures/shopify/orders_create.json").read_bytes()
        posted = httpx.post(
            f"http://127.0.0.1:{port}/webhooks/shopify",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Shopify-Topic": "orders/create",
                "X-Shopify-Hmac-Sha256": base64_hmac("run-test-secret", body),
                "X-Shopify-Webhook-Id": "run-test-1",
            },
        )
        assert posted.status_code == 202, posted.text
        engine = sa.create_engine(f"sqlite:///{tmp_path / 'run.db'}")
        processed = 0
        while time.monotonic() < deadline + 2 and not processed:
            with engine.connect() as conn:
                processed = conn.scalar(
                    sa.text("SELECT count(*) FROM events WHERE processed_at IS NOT NULL")
                )
            time.sleep(0.1)
        engine.dispose()
        assert processed >= 1  # the in-process worker threads consumed the event
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            _, err = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "mactl run stopped" in err
