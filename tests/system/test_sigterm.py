"""SIGTERM to a real `mactl worker`: the provider calls in flight finish and are recorded,
the rest stays queued for the next worker; every line the worker logs is JSON."""

from __future__ import annotations

import json
import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.system.procs import (
    REPO,
    SECRETS,
    Proc,
    Providers,
    free_port,
    mactl_ok,
    native_headers,
    order_event,
    wait_for,
    wait_http_ok,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
ORDERS = 4


def statuses(engine: sa.Engine) -> dict[int, str]:
    with engine.connect() as conn:
        query = sa.text("SELECT id, status FROM messages WHERE channel = 'zalo_zns'")
        return {row.id: row.status for row in conn.execute(query)}


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every non-empty line parsed as JSON (a plain-text line fails the test)."""
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, "the worker logged nothing"
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"worker log line is not JSON: {line!r}") from None
    return parsed


def test_sigterm_finishes_calls_in_flight_and_leaves_the_rest_queued(
    system_env: dict[str, str],
    providers: Providers,
    pg_engine: sa.Engine,
    redis_db: str,
    tmp_path: Path,
) -> None:
    env = {**system_env, "DELIVERY_CONCURRENCY": "2", "DELIVERY_BATCH_SIZE": "2"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    mactl_ok("db", "upgrade", env=env, cwd=tmp_path)
    mactl_ok("apply", str(REPO / "playbooks"), env=env, cwd=tmp_path)
    serve = Proc("serve", ["serve", "--port", str(port)], env, tmp_path, tmp_path / "serve.log")
    args = ["worker", "--processes", "1", "--threads", "1"]
    first = Proc("worker-1", args, env, tmp_path, tmp_path / "worker-1.log")
    second = Proc("worker-2", args, env, tmp_path, tmp_path / "worker-2.log")
    try:
        serve.start()
        wait_http_ok(f"{base}/healthz", serve)
        providers.zns.delay = 3.0
        first.start()
        events = [order_event(n, f"mua{n}@example.vn", f"09876500{n:02d}", f"Mua{n}")
                  for n in range(ORDERS)]
        body = json.dumps({"events": events}, ensure_ascii=False).encode()
        answer = httpx.post(f"{base}/webhooks/events", content=body, timeout=10,
                            headers=native_headers(SECRETS["EVENTS_WEBHOOK_SECRET"], body))
        assert answer.status_code == 202, answer.text

        def in_flight() -> list[str]:
            return [providers.zns.key(h) for h in list(providers.zns.hits) if not h.answered]

        flying = wait_for(in_flight, 60, "a ZNS call in flight", (first,))
        assert first.popen is not None
        os.kill(first.popen.pid, signal.SIGTERM)  # the main process, as `docker stop` does
        started = time.monotonic()
        code = first.popen.wait(timeout=30)
        assert code == 0, first.output()[-3000:]
        assert time.monotonic() - started >= 1.0  # it waited for the provider's answer
        rows = statuses(pg_engine)
        for key in flying:  # the calls in flight finished and were recorded
            assert rows[int(key)] == "sent", (key, rows)
        assert "sending" not in rows.values(), rows
        assert len(providers.zns.hits) < ORDERS  # the rest was not started...
        json_lines(first.output())

        providers.zns.delay = 0.0
        second.start()  # ...and the next worker sends it, each row once

        def all_sent() -> bool:
            now = statuses(pg_engine)
            return len(now) == ORDERS and set(now.values()) == {"sent"}

        wait_for(all_sent, 60, "every ZNS message sent", (second,))
        assert set(providers.zns.key_counts().values()) == {1}, providers.zns.key_counts()
        assert Counter(statuses(pg_engine).values()) == {"sent": ORDERS}
        logged = json_lines(second.output())
        assert {"time", "level", "logger", "message"} <= set(logged[0])
        assert "mua0@example.vn" not in second.output()
    finally:
        for proc in (serve, first, second):
            proc.stop()
