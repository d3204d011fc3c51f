"""Faults, proven in one run: every message ends known, none lost, marketing never twice.

    python bench/chaos.py [--messages 5000] [--threads 4]

Needs PostgreSQL (CHAOS_PG_ADMIN_URL, default postgresql+psycopg://postgres@127.0.0.1:5432/
postgres; a throw-away database is created and dropped) and Redis (CHAOS_REDIS_URL,
default redis://127.0.0.1:6379/15, flushed).

N outbox rows (one contact each, half marketing, half transactional) spread over e-mail
(aiosmtpd), SMS (eSMS), Zalo ZNS and Messenger loopback servers that answer 5xx, 429 with
Retry-After, time out or drop the connection for a share of requests and refuse ~1% of
recipients for good. Two `mactl worker` processes and `mactl scheduler` (the rows are
found by its stale-outbox pass, as after a crash) reach PostgreSQL and Redis through TCP
proxies; `mactl serve` receives webhooks. While the rows drain:

1. worker 1 is killed with SIGKILL and restarted;
2. Redis is flushed;
3. PostgreSQL refuses connections for a few seconds (the proxy drops them);
4. Redis refuses connections for a few seconds while webhooks arrive: they are accepted
   and stored, and processed once Redis is back.

Printed at the end: expected, sent, failed with reason, ambiguous (``unknown``: in flight
at a crash, marketing), duplicates where the provider dedupes on our key (eSMS
RequestId: must be 0), duplicates elsewhere (marketing must be 0; transactional bounded
by the calls in flight at the kill and the outage), lost (must be 0), time to drain.
The same run at a small size is tests/system/test_chaos.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.system.procs import (  # noqa: E402
    SECRETS,
    Faults,
    FaultyProvider,
    Proc,
    TcpProxy,
    base_env,
    free_port,
    mactl_ok,
    native_headers,
    start_faulty_smtp,
    wait_http_ok,
)

CHANNELS = ("email", "sms", "zalo_zns", "messenger")
PENDING = ("queued", "deferred", "sending")
TEMPLATE = """\
email:
  subject: "Thông báo cho {{ contact.first_name }}"
  text: "Chào {{ contact.first_name }}, cảm ơn bạn đã mua sắm tại {{ shop.name }}."
sms:
  text: "{{ shop.name }}: cam on {{ contact.first_name | first_name_or('ban') }} da mua hang"
zalo_zns:
  template_id: "100001"
  params:
    customer_name: "{{ contact.first_name }}"
messenger:
  text: "Chào {{ contact.first_name }}, đơn hàng của bạn đang được xử lý."
"""


@dataclass
class Setup:
    """What one chaos run does: its size and when each fault strikes (share sent)."""

    messages: int = 5000
    threads: int = 4
    kill_at: float = 0.2
    flush_at: float = 0.4
    pg_outage_at: float = 0.6
    outage_seconds: float = 4.0
    #: Longer than the slowest live batch (50 rows, 8 calls at a time, 15 s timeouts and
    #: Retry-After waits), or a live row is taken for a crashed one (see the README).
    stale_seconds: int = 120
    faults: Faults = field(default_factory=lambda: Faults(
        error=0.04, throttle=0.04, timeout=0.005, drop=0.02, reject=0.01))
    provider_delay: float = 0.02
    drain_timeout: float = 1800.0
    pg_admin_url: str = os.environ.get(
        "CHAOS_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    redis_url: str = os.environ.get("CHAOS_REDIS_URL", "redis://127.0.0.1:6379/15")
    log: Callable[[str], None] = print


@dataclass
class Report:
    """The run's figures (see the module docstring)."""

    expected: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    failed: Counter[str] = field(default_factory=Counter)
    ambiguous: int = 0
    ambiguous_delivered: int = 0
    ambiguous_transactional: int = 0
    ambiguous_unexplained: int = 0
    dup_keyed: int = 0
    repeats_deduped: int = 0
    dup_marketing: int = 0
    dup_transactional: int = 0
    dup_bound: int = 0
    in_flight_at_kill: int = 0
    lost: list[int] = field(default_factory=list)
    drain_seconds: float = 0.0
    faults: dict[str, Counter[str]] = field(default_factory=dict)
    webhooks_while_redis_down: int = 0
    webhooks_processed: int = 0
    pg_refused: int = 0

    @property
    def sent(self) -> int:
        """Rows the provider accepted (sent or better)."""
        return sum(n for s, n in self.statuses.items()
                   if s not in (*PENDING, "failed", "skipped", "unknown", "bounced"))

    def lines(self) -> list[str]:
        """The report, one figure a line."""
        failed = ", ".join(f"{n} x {r}" for r, n in self.failed.most_common()) or "none"
        faults = "; ".join(f"{k}: {dict(v)}" for k, v in self.faults.items())
        return [
            f"messages expected:        {self.expected}",
            f"sent:                     {self.sent}",
            f"failed:                   {sum(self.failed.values())} ({failed})",
            f"ambiguous (unknown):      {self.ambiguous} "
            f"(the provider had accepted {self.ambiguous_delivered} of them; all were "
            f"'sending' at the kill or the outage: {self.ambiguous_unexplained == 0})",
            f"duplicates, provider dedupes on our key (eSMS RequestId): {self.dup_keyed}"
            f" (repeats the provider deduped: {self.repeats_deduped})",
            f"duplicates elsewhere:     marketing {self.dup_marketing}, transactional "
            f"{self.dup_transactional} (bound: {self.dup_bound} rows claimed at the kill and "
            f"the outage; HTTP calls in flight (both workers) at the kill: "
            f"{self.in_flight_at_kill})",
            f"lost:                     {len(self.lost)}",
            f"time to drain:            {self.drain_seconds:.1f} s",
            f"final statuses:           {dict(self.statuses)}",
            f"webhooks while Redis down: {self.webhooks_while_redis_down} accepted, "
            f"{self.webhooks_processed} processed after it returned",
            f"PostgreSQL connections refused by the proxy: {self.pg_refused}",
            f"provider answers:         {faults}",
        ]


def create_database(admin_url: str) -> str:
    """A fresh PostgreSQL database; returns its URL."""
    name = f"ma_chaos_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return admin_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(admin_url: str, url: str) -> None:
    """Drop the run's database."""
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
    admin.dispose()


def address(channel: str, i: int) -> str:
    """Row i's recipient on its channel (one contact per row)."""
    if channel == "email":
        return f"khach{i}@example.vn"
    if channel == "messenger":
        return f"psid{i:08d}"
    return f"+849{i:08d}"


def recipient(to: str) -> str:
    """One spelling of a recipient: phones as their last 9 digits (+84 / 84 / 0 prefixes)."""
    if "@" in to or to.startswith("psid"):
        return to
    return "".join(ch for ch in to if ch.isdigit())[-9:]


def seed(engine: sa.Engine, n: int) -> dict[str, tuple[int, str, str]]:
    """N contacts with consent and one queued outbox row each, already stale (found by the
    scheduler's stale-outbox pass). Returns recipient -> (row id, channel, purpose)."""
    from automation.core.models import Consent, Contact, Message

    inbound = {"messenger": datetime.now(UTC).isoformat()}  # the 24 h window is open
    specs = [(i, CHANNELS[i % 4], "marketing" if (i // 4) % 2 else "transactional")
             for i in range(n)]
    with engine.begin() as conn:
        contacts = []
        for i, channel, _ in specs:
            to = address(channel, i)
            contacts.append({
                "email": to if channel == "email" else None,
                "phone": to if channel in ("sms", "zalo_zns") else None,
                "facebook_psid": to if channel == "messenger" else None,
                "first_name": "Lan", "last_name": "Nguyễn", "timezone": "Asia/Ho_Chi_Minh",
                "attributes": {}, "tags": [], "last_inbound_at": inbound,
            })
        ids = list(conn.execute(sa.insert(Contact).returning(Contact.id), contacts).scalars())
        conn.execute(sa.insert(Consent), [
            {"contact_id": c, "channel": ch, "purpose": p, "status": "granted",
             "source": "chaos"}
            for c in ids for ch in ("email", "sms", "zalo", "messenger")
            for p in ("marketing", "transactional")])
        old = datetime.now(UTC) - timedelta(hours=1)
        rows = [{"step_key": f"chaos:{i}", "contact_id": c, "channel": channel,
                 "purpose": purpose, "template": "chaos/note", "status": "queued",
                 "attempts": 0, "fallback": [], "rendered": {}, "links": {},
                 "created_at": old, "updated_at": old}
                for (i, channel, purpose), c in zip(specs, ids, strict=True)]
        mids = list(conn.execute(sa.insert(Message).returning(Message.id), rows).scalars())
    return {address(ch, i): (m, ch, p) for (i, ch, p), m in zip(specs, mids, strict=True)}


def counts(engine: sa.Engine) -> Counter[str]:
    """Outbox rows per status (read directly, not through the proxy)."""
    with engine.connect() as conn:
        return Counter({str(k): int(v) for k, v in conn.execute(sa.text(
            "SELECT status, count(*) FROM messages GROUP BY status"))})


def sending_rows(engine: sa.Engine) -> set[int]:
    """Ids of rows claimed right now."""
    with engine.connect() as conn:
        return set(conn.execute(sa.text("SELECT id FROM messages WHERE status = 'sending'"))
                   .scalars())


def run(setup: Setup, work: Path) -> Report:
    """One chaos run (see the module docstring); returns its report."""
    say, faults = setup.log, setup.faults
    providers = {kind: FaultyProvider(kind, faults, delay=setup.provider_delay)
                 for kind in ("zns", "esms", "messenger")}
    smtp, smtp_url, smtp_ctl = start_faulty_smtp(faults)
    client = redis.Redis.from_url(setup.redis_url)
    client.flushdb()
    db_url = create_database(setup.pg_admin_url)
    pg_proxy = TcpProxy("127.0.0.1", sa.make_url(db_url).port or 5432)
    redis_proxy = TcpProxy("127.0.0.1", client.connection_pool.connection_kwargs["port"])
    (work / "templates" / "chaos").mkdir(parents=True, exist_ok=True)
    (work / "templates" / "chaos" / "note.yaml").write_text(TEMPLATE, encoding="utf-8")
    env = base_env(
        DATABASE_URL=pg_proxy.url(db_url), REDIS_URL=setup.redis_url, **SECRETS,
        TEMPLATES_DIR=str(work / "templates"), OUTBOX_FILE=str(work / "outbox.jsonl"),
        LOG_LEVEL="WARNING", COMPLIANCE_PROFILE="none",
        OUTBOX_STALE_SECONDS=str(setup.stale_seconds),
        DELIVERY_MIN_BACKOFF_MS="300", DELIVERY_MAX_BACKOFF_MS="3000",
        DELIVERY_MAX_ATTEMPTS="12", WORKER_THREADS=str(setup.threads),
        PROVIDER_RATE_LIMITS='{"esms": 0, "zalo_zns": 0, "smtp": 0, "messenger": 0}',
        ZALO_ACCESS_TOKEN="chaos-token", ZALO_ZNS_API_BASE=providers["zns"].url,
        ESMS_API_KEY="k", ESMS_SECRET_KEY="s", ESMS_BRANDNAME="SHOPVN",
        ESMS_API_BASE=providers["esms"].url, SMTP_URL=smtp_url,
        # One customer-care request per row (RequestId = row id: the key eSMS dedupes on);
        # advertising pools have their own crash tests (RequestId = pool id).
        ESMS_AD_POOL_SECONDS="0",
        EMAIL_FROM="Cửa hàng <no-reply@shop.example.vn>", SHOP_NAME="Lụa Hà Đông",
        FACEBOOK_PAGE_TOKEN="chaos-page-token", FACEBOOK_GRAPH_BASE=providers["messenger"].url,
    )
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    procs: list[Proc] = []
    report = Report(expected=setup.messages)
    try:
        mactl_ok("db", "upgrade", env={**env, "DATABASE_URL": db_url}, cwd=work, timeout=300)
        rows = seed(engine, setup.messages)
        say(f"seeded {len(rows)} outbox rows on {db_url.rsplit('/', 1)[1]}")

        def worker(n: int) -> Proc:
            return Proc(f"worker-{n}", ["worker", "--processes", "1"], env, work,
                        work / f"worker-{n}.log").start()

        port = free_port()
        serve_env = {**env, "REDIS_URL": redis_proxy.url(setup.redis_url)}
        serve = Proc("serve", ["serve", "--port", str(port)], serve_env, work,
                     work / "serve.log").start()
        procs += [serve, worker(1), worker(2),
                  Proc("scheduler", ["scheduler", "--interval", "1"], env, work,
                       work / "scheduler.log").start()]
        started = time.monotonic()
        done = lambda: sum(n for s, n in counts(engine).items() if s not in PENDING)  # noqa: E731
        bound: set[int] = set()

        def at_share(share: float, what: str) -> None:
            wait(lambda: done() >= share * setup.messages, setup.drain_timeout, what, procs)

        at_share(setup.kill_at, "the kill")
        bound |= sending_rows(engine)
        report.in_flight_at_kill = sum(len(p.in_flight()) for p in providers.values())
        procs[1].kill9()
        bound |= sending_rows(engine)  # and rows claimed between that look and the kill
        say(f"{time.monotonic() - started:.1f}s: worker-1 killed (SIGKILL) with "
            f"{len(bound)} rows sending")
        procs[1] = worker(1)
        at_share(setup.flush_at, "the flush")
        client.flushdb()
        say(f"{time.monotonic() - started:.1f}s: Redis flushed")
        at_share(setup.pg_outage_at, "the PostgreSQL outage")
        claimed = sending_rows(engine)
        pg_proxy.outage(setup.outage_seconds)
        claimed |= sending_rows(engine)  # claimed between that look and the outage (direct)
        bound |= claimed
        say(f"{time.monotonic() - started:.1f}s: PostgreSQL refuses connections for "
            f"{setup.outage_seconds:.0f}s ({len(claimed)} rows sending)")
        time.sleep(setup.outage_seconds)
        wait_http_ok(f"http://127.0.0.1:{port}/healthz", serve, timeout=120)
        report.webhooks_while_redis_down = webhooks_during_redis_outage(
            redis_proxy, port, 2 * setup.outage_seconds)
        say(f"{time.monotonic() - started:.1f}s: {report.webhooks_while_redis_down} webhooks "
            "accepted while Redis refused connections")
        settled = lambda: not any(counts(engine)[s] for s in PENDING)  # noqa: E731
        wait(settled, setup.drain_timeout, "every row to end", procs)
        report.drain_seconds = time.monotonic() - started
        time.sleep(3)  # a late outcome of a batch held across the outage may re-queue a row
        wait(settled, setup.drain_timeout, "every row to end (again)", procs)
        wait(lambda: processed_webhooks(engine) >= report.webhooks_while_redis_down, 120,
             "the webhooks stored while Redis was down to be processed", procs)
        report.webhooks_processed = processed_webhooks(engine)
        report.dup_bound = len(bound)
        report.pg_refused = pg_proxy.refused
        figures(report, engine, rows, providers, smtp.accepted, bound)
        report.repeats_deduped = providers["esms"].fault_counts["deduped"]
        report.faults = {k: p.fault_counts for k, p in providers.items()}
        report.faults["smtp"] = smtp.fault_counts
        return report
    finally:
        for proc in procs:
            proc.stop()
        engine.dispose()
        for closing in (pg_proxy, redis_proxy, *providers.values()):
            closing.close()
        smtp_ctl.stop()
        client.flushdb()
        client.close()
        drop_database(setup.pg_admin_url, db_url)


def wait(check: Callable[[], Any], timeout: float, what: str, procs: list[Proc]) -> None:
    """Poll ``check`` (tolerating a refused connection) until true; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except sa.exc.OperationalError:
            pass
        for proc in procs:
            if not proc.alive:
                raise AssertionError(f"{proc.name} exited waiting for {what}:\n"
                                     f"{proc.output()[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def webhooks_during_redis_outage(proxy: TcpProxy, port: int, seconds: float) -> int:
    """Post signed lead events while the Redis proxy refuses; returns how many got 202."""
    proxy.outage(seconds)
    accepted = 0
    for n in range(5):
        event = {"id": f"chaos-lead-{n}", "type": "lead.captured",
                 "occurred_at": datetime.now(UTC).isoformat(),
                 "contact": {"email": f"moi{n}@example.vn", "first_name": "Mai"}}
        body = json.dumps({"events": [event]}, ensure_ascii=False).encode()
        answer = httpx.post(f"http://127.0.0.1:{port}/webhooks/events", content=body,
                            headers=native_headers(SECRETS["EVENTS_WEBHOOK_SECRET"], body),
                            timeout=30)
        accepted += answer.status_code == 202
    return accepted


def processed_webhooks(engine: sa.Engine) -> int:
    """Chaos lead events stored and processed."""
    with engine.connect() as conn:
        return int(conn.execute(sa.text(
            "SELECT count(*) FROM events WHERE type = 'lead.captured' "
            "AND processed_at IS NOT NULL")).scalar_one())


def figures(report: Report, engine: sa.Engine, rows: dict[str, tuple[int, str, str]],
            providers: dict[str, FaultyProvider], mails: dict[str, list[str]],
            bound: set[int]) -> None:
    """Fill the report from the database and what the providers accepted."""
    with engine.connect() as conn:
        final = {r.id: r for r in conn.execute(sa.text(
            "SELECT id, status, error, purpose FROM messages"))}
    accepted = {recipient(to): keys for got in (*(p.accepted for p in providers.values()), mails)
                for to, keys in got.items()}
    report.statuses = Counter(r.status for r in final.values())
    report.failed = Counter(str(r.error)[:60] for r in final.values() if r.status == "failed")
    for to, (mid, channel, purpose) in rows.items():
        row, keys = final[mid], accepted.get(recipient(to), [])
        if row.status == "unknown":
            report.ambiguous += 1
            report.ambiguous_delivered += bool(keys)
            report.ambiguous_transactional += purpose != "marketing"
            report.ambiguous_unexplained += mid not in bound
        if row.status in PENDING or (row.status == "sent" and not keys):
            report.lost.append(mid)
        if channel == "sms":  # eSMS dedupes on RequestId: the recipient gets one per key
            report.dup_keyed += max(0, len(set(keys)) - 1)
        elif len(keys) > 1:
            if purpose == "marketing":
                report.dup_marketing += len(keys) - 1
            else:
                report.dup_transactional += len(keys) - 1


def main() -> None:
    """Run at full size and print the figures; exit 1 when a promise is broken."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    setup = Setup(messages=args.messages, threads=args.threads)
    with tempfile.TemporaryDirectory(prefix="ma_chaos_") as tmp:
        report = run(setup, Path(tmp))
    print("\n".join(report.lines()))
    broken = report.lost or report.dup_keyed or report.dup_marketing
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
