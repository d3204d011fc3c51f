"""Faults, proven in one run (small size): bench/chaos.py with 300 rows in CI.

Two workers and the scheduler drain 300 outbox rows over e-mail, SMS, Zalo ZNS and
Messenger loopback providers that fail a share of requests, while a worker is killed
with SIGKILL, Redis is flushed, PostgreSQL and then Redis refuse connections for a few
seconds (TCP proxies; the servers are never stopped) and webhooks arrive meanwhile.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.chaos import Report, Setup, run
from tests.system.conftest import PG_ADMIN_URL, SYSTEM_REDIS_URL
from tests.system.procs import Faults

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def test_chaos_run_loses_nothing_and_never_sends_marketing_twice(
    redis_db: str, tmp_path: Path
) -> None:
    lines: list[str] = []
    setup = Setup(messages=300, threads=4, outage_seconds=3.0, provider_delay=0.05,
                  stale_seconds=45, faults=Faults(error=0.04, throttle=0.04, drop=0.02,
                                                  reject=0.01),
                  drain_timeout=100.0, pg_admin_url=PG_ADMIN_URL, redis_url=SYSTEM_REDIS_URL,
                  log=lines.append)
    report: Report = run(setup, tmp_path)
    print("\n".join(lines + report.lines()))
    assert report.expected == sum(report.statuses.values()) == 300
    assert report.lost == [], report.lines()
    assert report.dup_keyed == 0 and report.dup_marketing == 0, report.lines()
    assert report.dup_transactional <= report.dup_bound, report.lines()
    # Only marketing rows end unknown, and only rows claimed at the kill or the outage.
    assert report.statuses["unknown"] == report.ambiguous
    assert report.ambiguous_transactional == 0 and report.ambiguous_unexplained == 0
    assert set(report.statuses) <= {"sent", "failed", "unknown"}, report.statuses
    assert sum(report.failed.values()) <= 10, report.lines()  # ~1% refused for good
    assert report.webhooks_while_redis_down == 5 == report.webhooks_processed
    assert report.pg_refused > 0
