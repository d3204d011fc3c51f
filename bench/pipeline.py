"""Delivery pipeline benchmark: outbox row -> Zalo ZNS acknowledgement, vs a no-op actor.

    python bench/pipeline.py [--contacts 20000] [--processes 2] [--threads 8]

Needs PostgreSQL (BENCH_PG_ADMIN_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/postgres;
a throw-away database is created and dropped) and Redis (BENCH_REDIS_URL, default
redis://127.0.0.1:6379/12, flushed: never point it at a shared database).

1. A loopback ZNS server (separate process, speaks POST /message/template -> error 0).
2. N contacts with phones and one queued ``zalo_zns`` marketing outbox row each (a
   one-send sequence's output: the rows are inserted directly, exactly as the sequences
   engine writes them — status queued, unique (enrollment, step) — so the benchmark
   measures delivery alone).
3. One ``dramatiq`` worker command (P processes x T threads) consuming both the send
   queues and the no-op queue, on the same Redis.
4. Baseline: N no-op actor messages (the actor only INCRs a Redis counter so completion
   is observable), timed from first enqueue to last processed.
5. Pipeline: ``enqueue_messages`` for all rows (batches of DELIVERY_BATCH_SIZE), timed to
   the moment every row is ``sent`` (written after the provider's acknowledgement):
   claim, consent/suppression/cap policy, render, rate limiter (Redis), HTTP send,
   status + ``message.sent`` event.

Prints throughput of both, their ratio (issue 10: >= 0.5, and above 833 rows/s), rows/s
per core (wall, and per worker CPU-second), CPU ms per row of the workers, the loopback
provider and the database's server processes, the load average, and the worker
processes' RSS (target < 200 MB). ``--profile DIR [--gil]`` records py-spy on the
worker processes during the pipeline phase. ``--inline`` runs no workers: the batches are
delivered one after another in the bench process, which prints its CPU ms per row (one
thread issuing batches: a steadier number than the workers' when the host is busy).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common import load_average  # noqa: E402

PG_ADMIN = os.environ.get(
    "BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
TEMPLATE = """zalo_zns:
  template_id: "100001"
  params:
    customer_name: "{{ contact.first_name | first_name_or('Quý khách') }}"
    order_code: "{{ contact.attributes.code }}"
    total: "{{ contact.total_spent | vnd }}"
"""


def zns_server(port_queue: Any) -> None:
    """A fast-enough ZNS look-alike: every POST is accepted with a msg_id."""

    import socket

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def setup(self) -> None:
            super().setup()
            self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            data = json.dumps(
                {"error": 0, "message": "Success",
                 "data": {"msg_id": f"z{body['tracking_id']}", "sent_time": "0"}}
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    port_queue.put(httpd.server_address[1])
    httpd.serve_forever()


NOOP_MODULE = '''
import logging
import redis
from automation.runtime.broker import actor
from automation.core.config import get_settings

_client = None
logging.getLogger("httpx").setLevel(logging.WARNING)  # no per-request INFO lines


@actor(queue_name="bench_noop", actor_name="bench_noop", max_retries=0)
def bench_noop(i: int) -> None:
    global _client
    if _client is None:
        _client = redis.Redis.from_url(get_settings().redis_url)
    _client.incr("bench:noop:done")
'''


def create_database() -> str:
    import sqlalchemy as sa

    name = f"ma_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    import sqlalchemy as sa

    name = url.rsplit("/", 1)[1]
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def seed(url: str, n: int) -> list[int]:
    """N contacts (zalo consent granted) and one queued ZNS row each; returns message ids."""
    import sqlalchemy as sa

    from automation.core.models import Consent, Contact, Message

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(Contact),
            [
                {"phone": f"+8491{i:07d}", "first_name": "Lan", "last_name": "Nguyễn",
                 "timezone": "Asia/Ho_Chi_Minh", "attributes": {"code": f"DH{i:06d}"},
                 "tags": [], "last_inbound_at": {}, "total_spent": 1250000 + i,
                 "orders_count": 1}
                for i in range(n)
            ],
        )
        ids = [r[0] for r in conn.execute(sa.select(Contact.id).order_by(Contact.id))]
        conn.execute(
            sa.insert(Consent),
            [{"contact_id": c, "channel": "zalo", "purpose": "marketing", "status": "granted",
              "source": "bench"} for c in ids],
        )
        conn.execute(
            sa.insert(Message),
            [{"step_key": f"bench:{c}", "contact_id": c, "channel": "zalo_zns",
              "purpose": "marketing", "template": "bench/notify", "status": "queued",
              "attempts": 0, "fallback": [], "rendered": {}, "links": {}} for c in ids],
        )
        mids = [r[0] for r in conn.execute(sa.select(Message.id).order_by(Message.id))]
        # A database in service has planner statistics (autovacuum gathers them within a
        # minute of a bulk insert); without them the first minute runs on default estimates
        # (sequential scans of consents, the claim through the status index).
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return mids


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by ``pids`` (all their threads)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def backends(engine: Any, database: str) -> list[int]:
    """PostgreSQL server process ids connected to ``database``."""
    import sqlalchemy as sa

    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(
            sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d"), {"d": database})]


def children(pid: int) -> list[int]:
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


def profile(pids: list[int], folder: Path, gil: bool) -> list[subprocess.Popen[bytes]]:
    """Start ``py-spy record`` (raw format, idle threads excluded) on each pid."""
    folder.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).with_name("py-spy"))
    return [
        subprocess.Popen(
            [spy, "record", "--pid", str(pid), "--format", "raw", "--nonblocking",
             *(["--gil"] if gil else []), "-o", str(folder / f"worker-{pid}.txt")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]


def wait_for(check: Any, timeout: float, what: str) -> float:
    start = time.perf_counter()
    while not check():
        if time.perf_counter() - start > timeout:
            raise SystemExit(f"timeout waiting for {what}")
        time.sleep(0.05)
    return time.perf_counter()


def inline(ids: list[int], batch: int) -> None:
    """Deliver the rows batch after batch on this thread; print CPU ms per row (this process:
    its send threads included; the first tenth warms caches and is not counted)."""
    from automation.core.db import session_scope
    from automation.delivery.send import deliver_batch

    batches = [ids[i : i + batch] for i in range(0, len(ids), batch)]
    warm = max(1, len(batches) // 10)
    for part in batches[:warm]:
        with session_scope() as session:
            deliver_batch(session, part)
    rows = sum(len(part) for part in batches[warm:])
    cpu0, start = time.process_time(), time.perf_counter()
    for part in batches[warm:]:
        with session_scope() as session:
            deliver_batch(session, part)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - start
    print(f"inline: {rows} rows in {wall:.2f}s = {rows / wall:,.0f}/s on one thread; "
          f"{1000 * cpu / rows:.3f} CPU ms per row in this process; {load_average()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=20_000)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--rate", type=float, default=50_000, help="ZNS msgs/s limit (Redis)")
    parser.add_argument("--profile", metavar="DIR",
                        help="py-spy record each worker process during the pipeline phase "
                             "(raw collapsed stacks in DIR/worker-<pid>.txt)")
    parser.add_argument("--inline", action="store_true",
                        help="no workers: deliver the batches one after another in this "
                             "process and print its CPU ms per row (steadier on a busy host)")
    parser.add_argument("--gil", action="store_true",
                        help="with --profile: sample only the thread holding the GIL (CPU cost)")
    args = parser.parse_args()

    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.flushdb()
    ports: Any = multiprocessing.Queue()
    server = multiprocessing.Process(target=zns_server, args=(ports,), daemon=True)
    server.start()
    port = ports.get(timeout=10)

    db_url = create_database()
    tmp = Path(tempfile.mkdtemp(prefix="ma_bench_"))
    (tmp / "templates" / "bench").mkdir(parents=True)
    (tmp / "templates" / "bench" / "notify.yaml").write_text(TEMPLATE, encoding="utf-8")
    (tmp / "bench_noop_actor.py").write_text(NOOP_MODULE, encoding="utf-8")
    env = {
        "DATABASE_URL": db_url,
        "REDIS_URL": REDIS_URL,
        "SECRET_KEY": "bench-secret-key-0123456789abcdef-bench",
        "TEMPLATES_DIR": str(tmp / "templates"),
        "ZALO_ACCESS_TOKEN": "bench-token",
        "ZALO_ZNS_API_BASE": f"http://127.0.0.1:{port}",
        "PROVIDER_RATE_LIMITS": json.dumps({"zalo_zns": args.rate}),
        "DELIVERY_BATCH_SIZE": str(args.batch),
        "WORKER_THREADS": str(args.threads),
        "LOG_LEVEL": "WARNING",
    }
    os.environ.update(env)
    worker: subprocess.Popen[bytes] | None = None
    try:
        from automation.core.config import get_settings
        from automation.core.migrate import upgrade

        get_settings.cache_clear()
        upgrade(db_url)
        t0 = time.perf_counter()
        ids = seed(db_url, args.contacts)
        print(f"seeded {len(ids)} contacts + outbox rows in {time.perf_counter() - t0:.1f}s")
        if args.inline:
            inline(ids, args.batch)
            return

        worker = subprocess.Popen(
            [sys.executable, "-m", "dramatiq", "automation.runtime.worker", "bench_noop_actor",
             "--processes", str(args.processes), "--threads", str(args.threads),
             "--path", str(ROOT), str(tmp)],
            env={**os.environ, "PYTHONPATH": f"{ROOT}:{tmp}"},
            stdout=subprocess.DEVNULL,
            stderr=open(tmp / "worker.log", "wb"),  # noqa: SIM115
        )
        time.sleep(4)  # worker boot
        sys.path.insert(0, str(tmp))
        from automation.runtime.broker import configure_broker

        configure_broker(get_settings())
        import bench_noop_actor  # type: ignore[import-not-found]

        # --- baseline: no-op actor
        start = time.perf_counter()
        for i in range(args.contacts):
            bench_noop_actor.bench_noop.send(i)
        end = wait_for(lambda: int(client.get("bench:noop:done") or 0) >= args.contacts, 600,
                       "no-op actor")
        noop_rate = args.contacts / (end - start)
        print(f"no-op actor: {args.contacts} messages in {end - start:.2f}s "
              f"= {noop_rate:,.0f}/s")

        # --- pipeline: outbox -> ZNS ack
        import sqlalchemy as sa

        from automation.core.db import session_scope
        from automation.core.models import Message
        from automation.runtime.dispatch import enqueue_messages

        engine = sa.create_engine(db_url)

        def sent() -> int:
            with engine.connect() as conn:
                return int(conn.execute(
                    sa.select(sa.func.count()).select_from(Message).where(Message.status == "sent")
                ).scalar_one())

        procs = children(worker.pid)
        pg_pids = backends(engine, db_url.rsplit("/", 1)[1])
        cpu0 = {k: cpu_seconds(v) for k, v in
                {"workers": procs, "zns": [server.pid], "postgres": pg_pids}.items()}
        load0 = load_average()
        spies = profile(procs, Path(args.profile), args.gil) if args.profile else []
        start = time.perf_counter()
        with session_scope() as session:
            batches = enqueue_messages(session, ids)
        end = wait_for(lambda: sent() >= args.contacts, 1200, "pipeline")
        pg_pids = sorted(set(pg_pids) | set(backends(engine, db_url.rsplit("/", 1)[1])))
        cpu = {k: cpu_seconds(v) - cpu0.get(k, 0.0) for k, v in
               {"workers": procs, "zns": [server.pid], "postgres": pg_pids}.items()}
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        rate = args.contacts / (end - start)
        print(f"pipeline: {args.contacts} rows -> ZNS ack in {end - start:.2f}s "
              f"= {rate:,.0f}/s ({batches} actor messages of <= {args.batch} rows)")
        with engine.connect() as conn:
            statuses = dict(conn.execute(
                sa.select(Message.status, sa.func.count()).group_by(Message.status)).all())
        engine.dispose()
        print(f"statuses: {statuses}")
        rss = {p: rss_mb(p) for p in procs}
        print(f"ratio pipeline/no-op: {rate / noop_rate:.2f} (issue 10: >= 0.5 and > 833 rows/s)")
        per_row = {k: 1000 * v / args.contacts for k, v in cpu.items()}
        print(f"rows/s per core: {rate / (os.cpu_count() or 1):,.0f} (wall) | "
              f"{args.contacts / max(cpu['workers'], 1e-9):,.0f} rows per worker CPU-second")
        print("CPU ms per row: " + ", ".join(f"{k} {v:.2f}" for k, v in per_row.items()))
        print(f"{load0} at the start of the pipeline phase, {load_average()} at its end")
        print("worker RSS MB: " + ", ".join(f"{v:.0f}" for v in rss.values())
              + f" (max {max(rss.values(), default=0):.0f}; target < 200)")
        print(f"setup: {args.processes} processes x {args.threads} threads, "
              f"{os.cpu_count()} CPUs, PostgreSQL + Redis on this host")
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        server.terminate()
        from automation.core.db import dispose_all

        dispose_all()
        drop_database(db_url)


if __name__ == "__main__":
    main()
