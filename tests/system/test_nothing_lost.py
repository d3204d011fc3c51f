"""DESIGN promise 2, "nothing lost", through the real processes on PostgreSQL + Redis.

Redis is flushed twice (the events' processing messages, then the outbox hand-offs)
and the worker is killed with SIGKILL while a slow Zalo ZNS call is in flight. After a
restart and a few `mactl scheduler --once --now ...` passes, every event is processed,
every due step ran and every message was sent exactly once: each idempotency key
(ZNS tracking_id, e-mail Message-ID) reached the provider once, except a transactional
send in flight when the worker died, which may be repeated with the same key. A marketing
row claimed at the kill is not sent again: it ends ``unknown`` (DELIVERY_AMBIGUOUS_MARKETING).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa

from tests.system.procs import (
    REPO,
    SECRETS,
    Proc,
    Providers,
    free_port,
    lead_event,
    mactl_ok,
    native_headers,
    order_event,
    wait_for,
    wait_http_ok,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
LEADS, ORDERS = 4, 3


def rows(engine: sa.Engine, sql: str) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(sql))]


def statuses(engine: sa.Engine) -> list[dict[str, Any]]:
    return rows(
        engine,
        "SELECT id, channel, template, status, enrollment_id, step_key, attempts "
        "FROM messages ORDER BY id",
    )


def scheduler(at: datetime, env: dict[str, str], cwd: Path) -> dict[str, int]:
    counts: dict[str, int] = json.loads(
        mactl_ok("scheduler", "--once", "--now", at.isoformat(), env=env, cwd=cwd)
    )
    assert all(v >= 0 for v in counts.values()), f"a scheduler task failed: {counts}"
    return counts


def test_system_flush_and_kill_lose_nothing_and_send_once(
    system_env: dict[str, str],
    providers: Providers,
    pg_engine: sa.Engine,
    redis_db: str,
    tmp_path: Path,
) -> None:
    env = {**system_env, "OUTBOX_STALE_SECONDS": "10", "DELIVERY_MIN_BACKOFF_MS": "200"}
    flush = redis.Redis.from_url(redis_db).flushdb
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    mactl_ok("db", "upgrade", env=env, cwd=tmp_path)
    serve = Proc("serve", ["serve", "--port", str(port)], env, tmp_path, tmp_path / "serve.log")
    log = tmp_path / "worker.log"
    worker_args = ["worker", "--processes", "1", "--threads", "2"]
    workers: list[Proc] = []
    try:
        serve.start()
        mactl_ok("apply", str(REPO / "playbooks"), env=env, cwd=tmp_path)
        wait_http_ok(f"{base}/healthz", serve)
        events = [lead_event(n, f"khach{n}@example.vn", f"09123400{n:02d}", f"Khách{n}")
                  for n in range(LEADS)]
        events += [order_event(n, f"mua{n}@example.vn", f"09876500{n:02d}", f"Mua{n}")
                   for n in range(ORDERS)]
        body = json.dumps({"events": events}, ensure_ascii=False).encode()
        answer = httpx.post(
            f"{base}/webhooks/events", content=body,
            headers=native_headers(SECRETS["EVENTS_WEBHOOK_SECRET"], body), timeout=10,
        )
        assert answer.status_code == 202 and answer.json()["accepted"] == LEADS + ORDERS

        # 1. Redis loses the deliveries' mapping messages: nobody maps them...
        flush()
        pending = rows(pg_engine, "SELECT count(*) AS n FROM inbox WHERE status = 'pending'")
        assert pending[0]["n"] == LEADS + ORDERS
        # ...until a scheduler pass processes them from the database. No worker runs, so
        # the outbox rows it creates wait in Redis, and Redis loses them too.
        t1 = datetime.now(UTC) + timedelta(minutes=1)
        assert scheduler(t1, env, tmp_path)["inbox"] == LEADS + ORDERS  # mapped and processed
        created = statuses(pg_engine)
        assert Counter(m["template"] for m in created) == {
            "lead_capture/welcome": LEADS,
            "order_status/confirmation": ORDERS,
            "order_status/receipt": ORDERS,
        }
        assert {m["status"] for m in created} == {"queued"}
        flush()

        # 2. Two days later the lead_capture waits are due (code reminders on ZNS) and the
        # lost outbox rows are stale. A worker starts with a slow ZNS provider and is
        # killed with SIGKILL while a ZNS call is in flight.
        providers.zns.delay = 2.0
        # Two calls in flight per wave: the kill lands after a wave's acknowledgements were
        # committed one by one and while the next wave is still waiting for the provider.
        concurrent = {**env, "DELIVERY_CONCURRENCY": "2"}
        workers.append(Proc("worker-1", worker_args, concurrent, tmp_path, log).start())
        t2 = t1 + timedelta(days=2, hours=1)
        counts = scheduler(t2, env, tmp_path)
        assert counts["due_enrollments"] >= LEADS, counts
        after = statuses(pg_engine)
        reminders = [m for m in after if m["template"] == "lead_capture/code_reminder"]
        assert len(reminders) == LEADS and len(after) == 2 * LEADS + 2 * ORDERS, after
        zalo_ids = {m["id"] for m in after if m["channel"] == "zalo_zns"}
        assert len(zalo_ids) == ORDERS + LEADS

        def mid_flight() -> bool:
            # A call answered (its wave is committed) and one that started well within the
            # provider's 2 s delay still waiting: the kill lands while it is in flight. (The
            # scheduler now hands its new rows to the worker at once, so the reminders'
            # and the stale rows' batches run side by side and their waves interleave.)
            hits = list(providers.zns.hits)
            fresh = [h for h in hits if not h.answered and time.monotonic() - h.received_at < 1.0]
            return any(h.answered for h in hits) and bool(fresh)

        wait_for(mid_flight, 40, "a second ZNS call in flight", tuple(workers))
        time.sleep(0.4)  # the answered calls are committed; the next wave is mid-flight

        def unanswered() -> set[str]:
            return {providers.zns.key(h) for h in list(providers.zns.hits) if not h.answered}

        in_flight = unanswered()
        workers[-1].kill9()
        in_flight |= unanswered()
        at_kill = {m["id"] for m in statuses(pg_engine) if m["status"] == "sending"}
        assert at_kill, "the killed send is stuck in 'sending'"
        marketing = {m["id"] for m in rows(pg_engine, "SELECT id FROM messages "
                                           "WHERE purpose = 'marketing'")}

        # 3. Redis is flushed again, the worker restarts, scheduler passes recover the rest.
        flush()
        providers.zns.delay = 0.0
        workers.append(Proc("worker-2", worker_args, env, tmp_path, log).start())
        t3 = t2 + timedelta(minutes=10)
        scheduler(t3, env, tmp_path)

        def all_ended() -> bool:
            return all(m["status"] in ("sent", "unknown") for m in statuses(pg_engine))

        wait_for(all_ended, 40, "every message sent (or unknown)", tuple(workers[-1:]))
        scheduler(t3 + timedelta(hours=1), env, tmp_path)  # nothing left: sends nothing
        time.sleep(1.0)

        final = statuses(pg_engine)
        assert len(final) == 2 * LEADS + 2 * ORDERS
        unknown = {m["id"] for m in final if m["status"] == "unknown"}
        assert unknown <= at_kill & marketing, (unknown, at_kill)  # in flight, marketing
        assert all(m["status"] == "sent" for m in final if m["id"] not in unknown), final
        assert len({(m["enrollment_id"], m["step_key"]) for m in final}) == len(final)
        unprocessed = rows(pg_engine, "SELECT count(*) AS n FROM events WHERE processed_at IS NULL")
        assert unprocessed[0]["n"] == 0

        zns = providers.zns.key_counts()
        sent_zalo = {str(i) for i in zalo_ids - unknown}
        assert sent_zalo <= set(zns) <= {str(i) for i in zalo_ids}, zns  # none missing
        repeated = {key: n for key, n in zns.items() if n > 1}
        assert not {int(k) for k in repeated} & marketing, repeated  # marketing: at most once
        assert set(repeated) <= in_flight and all(n == 2 for n in repeated.values()), (
            f"ZNS sends repeated beyond the one in flight at the kill: {repeated}, "
            f"in flight: {in_flight}"
        )
        email_ids = {m["id"] for m in final if m["channel"] == "email"}
        mails = Counter(m["Message-ID"] for m in providers.smtp.recorder.parsed())
        mailed = {int(k.split("-")[1].split("@")[0]) for k in mails}
        assert email_ids - unknown <= mailed <= email_ids
        assert set(mails.values()) == {1}, mails
        assert providers.esms.hits == []
    finally:
        for proc in (serve, *workers):
            proc.stop()
