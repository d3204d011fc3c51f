"""Benchmark segment evaluation on PostgreSQL: compiler vs hand-written SQL, and incremental.

Loads N contacts and M events (plus messages, engagement, suppressions, consents and
unreachable channels) into a throw-away PostgreSQL database with INSERT ... SELECT
generate_series, ANALYZEs, applies the shipped segments (playbooks/segments), then for
each segment times whole-base evaluation through the compiler (the rule compiled once,
"now" as parameters, as a time-based refresh runs it) against a hand-written query
for the same segment in the same run
(count(*) over each, alternating, best of --repeat) and prints the ratio (target <= 1.3).
Finally it times incremental evaluation for ~1000 random contacts: every shipped segment
for one contact (load facts + decide: target p99 <= 5 ms), and evaluate_contact including
the membership writes (rolled back).

    python bench/segments.py [--contacts 1000000] [--events 5000000] [--samples 1000]
                             [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import load_average  # noqa: E402

from automation.core.migrate import upgrade  # noqa: E402
from automation.segments import apply_segments, evaluate_contact  # noqa: E402
from automation.segments.compile import prepare_rule  # noqa: E402
from automation.segments.evaluate import evaluate, load_facts, needs_of  # noqa: E402
from automation.segments.rules import load_segment_file  # noqa: E402
from automation.segments.store import all_segments  # noqa: E402

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)

LOAD_SQL = [
    "SELECT setseed(0.42)",
    """
    INSERT INTO contacts (id, email, phone, zalo_user_id, facebook_psid, first_name, locale,
        attributes, tags, orders_count, total_spent, first_order_at, last_order_at,
        last_inbound_at, created_at, updated_at)
    SELECT g,
        CASE WHEN g % 10 <> 0 THEN 'c' || g || '@shop.vn' END,
        CASE WHEN g % 3 <> 0 THEN '+849' || lpad(g::text, 8, '0') END,
        CASE WHEN g % 5 = 0 THEN 'z' || g END,
        CASE WHEN g % 7 = 0 THEN 'p' || g END,
        (ARRAY['An','Bình','Chi','Dũng','Hà','Lan','Mai','Nam'])[1 + g % 8],
        'vi',
        jsonb_build_object('city', (ARRAY['Hà Nội','Hồ Chí Minh','Đà Nẵng','Cần Thơ'])[1 + g % 4]),
        '[]'::jsonb,
        o.n, o.n * (200000 + (random() * 3000000)::bigint),
        CASE WHEN o.n > 0 THEN :now - make_interval(days => 200 + (random() * 400)::int) END,
        CASE WHEN o.n > 0 THEN :now - make_interval(days => (random() * 365)::int,
                                                      hours => (random() * 24)::int) END,
        '{}'::jsonb,
        :now - make_interval(days => (random() * 700)::int),
        :now
    FROM generate_series(1, :contacts) AS g
    CROSS JOIN LATERAL (SELECT (CASE WHEN random() < 0.4 THEN 0
                                     ELSE (random() * random() * 12)::int END) + 0 * g AS n) o
    """,
    """
    INSERT INTO events (source, source_event_id, type, contact_id, occurred_at, received_at,
        processed_at, payload)
    SELECT 'bench', 'e' || g,
        (ARRAY['order.created','order.created','order.created','order.paid','order.paid',
               'cart.updated','cart.updated','checkout.started','lead.captured',
               'contact.updated'])[1 + g % 10],
        1 + (random() * (:contacts - 1))::bigint,
        :now - make_interval(secs => random() * 365 * 86400),
        :now, :now,
        jsonb_build_object('properties', jsonb_build_object(
            'total', (random() * 4000000)::bigint, 'order_id', g::text, 'currency', 'VND'))
    FROM generate_series(1, :events) AS g
    """,
    """
    INSERT INTO messages (id, step_key, contact_id, channel, purpose, template, status, attempts,
        fallback, rendered, links, created_at, updated_at)
    SELECT g, 's' || g, 1 + (random() * (:contacts - 1))::bigint,
        (ARRAY['email','sms','zalo_zns','zalo_oa','messenger'])[1 + g % 5], 'marketing', 't',
        'sent', 1, '[]'::jsonb, '{}'::jsonb, '{}'::jsonb,
        :now - make_interval(secs => random() * 120 * 86400), :now
    FROM generate_series(1, :messages) AS g
    """,
    """
    INSERT INTO message_events (message_id, type, provider, provider_event_id, occurred_at,
        payload)
    SELECT m.id, t.type, 'bench', m.id || '-' || t.type,
        m.created_at + make_interval(mins => (random() * 600)::int), '{}'::jsonb
    FROM messages m
    CROSS JOIN LATERAL (VALUES ('delivered'), ('opened'), ('clicked'), ('replied')) AS t(type)
    WHERE (t.type = 'delivered')
       OR (t.type = 'opened' AND m.id % 3 = 0)
       OR (t.type = 'clicked' AND m.id % 7 = 0)
       OR (t.type = 'replied' AND m.id % 29 = 0)
    """,
    """
    INSERT INTO suppressions (channel, address, reason, scope, created_at)
    SELECT 'email', 'c' || g || '@shop.vn', 'hard_bounce', 'all', :now
    FROM generate_series(1, :contacts, 53) AS g WHERE g % 10 <> 0
    """,
    """
    INSERT INTO consents (contact_id, channel, purpose, status, source, recorded_at)
    SELECT g, (ARRAY['email','sms','zalo','messenger'])[1 + g % 4], 'marketing', 'denied',
        'bench', :now
    FROM generate_series(1, :contacts, 17) AS g
    """,
    """
    INSERT INTO channel_reachability (contact_id, channel, state, reason, address, since)
    SELECT g, ch.channel, 'unreachable', 'bench', ch.address, :now
    FROM generate_series(1, :contacts, 41) AS g
    CROSS JOIN LATERAL (VALUES ('email', 'c' || g || '@shop.vn'),
                               ('sms', '+849' || lpad(g::text, 8, '0'))) AS ch(channel, address)
    WHERE (ch.channel = 'email' AND g % 10 <> 0) OR (ch.channel = 'sms' AND g % 3 <> 0)
    """,
    "SELECT setval(pg_get_serial_sequence('contacts', 'id'), :contacts)",
    "SELECT setval(pg_get_serial_sequence('messages', 'id'), :messages)",
]

# The same segments written by hand, as a careful engineer would for PostgreSQL.
HAND_WRITTEN: dict[str, str] = {
    "reachable": """
        SELECT c.id FROM contacts c
        WHERE (c.email <> ''
               AND NOT EXISTS (SELECT 1 FROM suppressions s
                               WHERE s.channel = 'email' AND s.address = c.email)
               AND NOT EXISTS (SELECT 1 FROM consents k WHERE k.contact_id = c.id
                               AND k.channel = 'email' AND k.purpose = 'marketing'
                               AND k.status = 'denied')
               AND NOT EXISTS (SELECT 1 FROM channel_reachability r
                               WHERE r.contact_id = c.id AND r.state = 'unreachable'
                               AND r.channel = 'email' AND r.address = c.email))
           OR (c.phone <> ''
               AND NOT EXISTS (SELECT 1 FROM suppressions s WHERE s.channel = 'sms'
                               AND s.address IN (c.phone, ltrim(c.phone, '+')))
               AND NOT EXISTS (SELECT 1 FROM consents k WHERE k.contact_id = c.id
                               AND k.channel = 'sms' AND k.purpose = 'marketing'
                               AND k.status = 'denied')
               AND NOT EXISTS (SELECT 1 FROM channel_reachability r
                               WHERE r.contact_id = c.id AND r.state = 'unreachable'
                               AND r.channel = 'sms' AND r.address = c.phone))
           OR ((c.phone <> '' OR c.zalo_user_id <> '')
               AND NOT EXISTS (SELECT 1 FROM suppressions s
                               WHERE s.channel IN ('zalo', 'zalo_zns', 'zalo_oa')
                               AND s.address IN (c.phone, ltrim(c.phone, '+'), c.zalo_user_id))
               AND NOT EXISTS (SELECT 1 FROM consents k WHERE k.contact_id = c.id
                               AND k.channel = 'zalo' AND k.purpose = 'marketing'
                               AND k.status = 'denied')
               AND NOT EXISTS (SELECT 1 FROM channel_reachability r
                               WHERE r.contact_id = c.id AND r.state = 'unreachable'
                               AND ((r.channel = 'zalo_zns' AND r.address = c.phone)
                                    OR (r.channel = 'zalo_oa' AND r.address = c.zalo_user_id))))
           OR (c.facebook_psid <> ''
               AND NOT EXISTS (SELECT 1 FROM suppressions s
                               WHERE s.channel = 'messenger' AND s.address = c.facebook_psid)
               AND NOT EXISTS (SELECT 1 FROM consents k WHERE k.contact_id = c.id
                               AND k.channel = 'messenger' AND k.purpose = 'marketing'
                               AND k.status = 'denied')
               AND NOT EXISTS (SELECT 1 FROM channel_reachability r
                               WHERE r.contact_id = c.id AND r.state = 'unreachable'
                               AND r.channel = 'messenger' AND r.address = c.facebook_psid))
    """,
    "engaged_30d": """
        SELECT m.contact_id FROM message_events me JOIN messages m ON m.id = me.message_id
        WHERE me.type IN ('opened', 'clicked', 'replied') AND me.occurred_at >= :t30
        UNION
        SELECT e.contact_id FROM events e
        WHERE e.type = 'order.created' AND e.occurred_at >= :t30 AND e.contact_id IS NOT NULL
    """,
    "vip": """
        SELECT c.id FROM contacts c WHERE c.total_spent >= 10000000
        UNION
        SELECT e.contact_id FROM events e
        WHERE e.type = 'order.created' AND e.occurred_at >= :t180
          AND jsonb_typeof(e.payload -> 'properties' -> 'total') = 'number'
          AND (e.payload -> 'properties' ->> 'total')::float8 >= 2000000
        GROUP BY e.contact_id HAVING count(*) >= 2
    """,
    "lapsed_90d": """
        SELECT c.id FROM contacts c WHERE c.orders_count >= 1 AND c.last_order_at < :t90
    """,
    "leads_not_buying_3d": """
        SELECT c.id FROM contacts c
        WHERE c.orders_count = 0
          AND EXISTS (SELECT 1 FROM events e WHERE e.contact_id = c.id
                      AND e.type = 'lead.captured' AND e.occurred_at >= :t30)
          AND NOT EXISTS (SELECT 1 FROM events e WHERE e.contact_id = c.id
                          AND e.type = 'lead.captured' AND e.occurred_at >= :t3)
    """,
}


def _create_database(admin_url: str) -> tuple[str, str]:
    name = f"ma_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return name, admin_url.rsplit("/", 1)[0] + f"/{name}"


def _drop_database(admin_url: str, name: str) -> None:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def load(engine: sa.Engine, contacts: int, events: int) -> None:
    """Generate the data set in SQL and ANALYZE it."""
    params = {"contacts": contacts, "events": events, "messages": contacts // 2, "now": NOW}
    with engine.begin() as conn:
        conn.execute(sa.text("SET maintenance_work_mem = '256MB'"))
        # bulk load without the events indexes, then build them once
        constraints = conn.execute(
            sa.text(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conrelid = 'events'::regclass AND contype = 'u'"
            )
        ).all()
        indexes = conn.execute(
            sa.text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events' "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint "
                "WHERE conrelid = 'events'::regclass)"
            )
        ).all()
        for name, _ in constraints:
            conn.execute(sa.text(f'ALTER TABLE events DROP CONSTRAINT "{name}"'))
        for name, _ in indexes:
            conn.execute(sa.text(f'DROP INDEX "{name}"'))
        for statement in LOAD_SQL:
            started = time.perf_counter()
            used = {k: v for k, v in params.items() if f":{k}" in statement}
            conn.execute(sa.text(statement), used)
            first = " ".join(statement.split())[:60]
            print(f"  {time.perf_counter() - started:6.1f}s  {first}", flush=True)
        started = time.perf_counter()
        for _, definition in indexes:
            conn.execute(sa.text(definition))
        for name, definition in constraints:
            conn.execute(sa.text(f'ALTER TABLE events ADD CONSTRAINT "{name}" {definition}'))
        print(f"  {time.perf_counter() - started:6.1f}s  events indexes rebuilt", flush=True)
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        started = time.perf_counter()
        conn.execute(sa.text("VACUUM ANALYZE"))
        print(f"  {time.perf_counter() - started:6.1f}s  VACUUM ANALYZE", flush=True)


def _time_count(
    conn: sa.Connection, query: Any, params: dict[str, Any] | None = None
) -> tuple[float, int]:
    started = time.perf_counter()
    if isinstance(query, str):
        count = conn.execute(sa.text(f"SELECT count(*) FROM ({query}) AS q"), params or {}).scalar()
    else:
        count = conn.execute(
            sa.select(sa.func.count()).select_from(query.subquery()), params or {}
        ).scalar()
    return time.perf_counter() - started, int(count or 0)


def whole_base(
    engine: sa.Engine, segments: dict[str, Any], repeat: int
) -> list[tuple[str, float, float, int, int]]:
    """Best-of-`repeat` timings, compiled vs hand-written, alternating in one connection."""
    params = {f"t{d}": NOW - timedelta(days=d) for d in (3, 30, 90, 180)}
    rows = []
    with engine.connect() as conn:
        # JIT compilation costs 1-2 s per query here and dwarfs execution; off for both sides
        conn.execute(sa.text("SET jit = off"))
        for key, rule in segments.items():
            # what a time-based refresh runs: the rule compiled once, now as parameters
            prepared = prepare_rule(rule)
            compiled, at = prepared.statement, prepared.params(NOW)
            hand = HAND_WRITTEN[key]
            used = {k: v for k, v in params.items() if f":{k}" in hand}
            _time_count(conn, compiled, at)  # warm the cache for both
            _time_count(conn, hand, used)
            times_c: list[float] = []
            times_h: list[float] = []
            count_c = count_h = 0
            for _ in range(repeat):
                elapsed, count_c = _time_count(conn, compiled, at)
                times_c.append(elapsed)
                elapsed, count_h = _time_count(conn, hand, used)
                times_h.append(elapsed)
            best_c, best_h = min(times_c), min(times_h)
            rows.append((key, best_c, best_h, count_c, count_h))
            print(
                f"  {key:22s} compiled {best_c * 1000:8.1f} ms (+{_spread(times_c):3.0f}%)  "
                f"hand {best_h * 1000:8.1f} ms (+{_spread(times_h):3.0f}%)  "
                f"ratio {best_c / best_h:5.2f}  members {count_c} / {count_h}",
                flush=True,
            )
    return rows


def _spread(times: list[float]) -> float:
    """How much slower the slowest run was than the best, in percent."""
    return (max(times) / min(times) - 1) * 100


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def incremental(engine: sa.Engine, contacts: int, samples: int) -> dict[str, float]:
    """Per-contact timings over random contacts: decide only, and evaluate_contact (rolled back)."""
    rng = random.Random(7)
    ids = [rng.randint(1, contacts) for _ in range(samples)]
    decide: list[float] = []
    full: list[float] = []
    with Session(engine) as session:
        segments = all_segments(session)
        rules = [rule for _, rule in segments]
        needs = needs_of(rules)
        for cid in ids[:20]:  # warm-up
            facts = load_facts(session, cid, needs, NOW)
        for cid in ids:
            started = time.perf_counter()
            facts = load_facts(session, cid, needs, NOW)
            assert facts is not None
            for rule in rules:
                evaluate(rule, facts, NOW)
            decide.append(time.perf_counter() - started)
            session.expunge_all()
        session.rollback()
        for cid in ids:
            started = time.perf_counter()
            evaluate_contact(session, cid, NOW)
            session.flush()
            full.append(time.perf_counter() - started)
            session.rollback()
    return {
        "decide_p50": statistics.median(decide) * 1000,
        "decide_p99": _pct(decide, 0.99) * 1000,
        "full_p50": statistics.median(full) * 1000,
        "full_p99": _pct(full, 0.99) * 1000,
    }


def main() -> None:
    """Parse arguments, build the data set, run both benchmarks, print the numbers."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=5_000_000)
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        ),
        help="admin URL; a throw-away database is created next to it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()

    name, url = _create_database(args.pg)
    print(f"database {name}: {args.contacts:,} contacts, {args.events:,} events", flush=True)
    engine = sa.create_engine(url)
    try:
        upgrade(url)
        started = time.perf_counter()
        load(engine, args.contacts, args.events)
        print(f"loaded in {time.perf_counter() - started:.1f}s", flush=True)
        with Session(engine) as session:
            defs = [
                load_segment_file(p) for p in sorted((ROOT / "playbooks/segments").glob("*.yaml"))
            ]
            apply_segments(session, defs)
            session.commit()
            rules = {seg.key: rule for seg, rule in all_segments(session)}
        print(f"whole-base evaluation (best of {args.repeat}, +spread = slowest run vs best; "
              f"{load_average()}):", flush=True)
        rows = whole_base(engine, rules, args.repeat)
        print(f"incremental evaluation over {args.samples} random contacts:", flush=True)
        inc = incremental(engine, args.contacts, args.samples)
        print(
            f"  all {len(rules)} segments, load facts + decide: p50 {inc['decide_p50']:.2f} ms, "
            f"p99 {inc['decide_p99']:.2f} ms (target <= 5 ms)\n"
            f"  evaluate_contact incl. membership + event writes: p50 {inc['full_p50']:.2f} ms, "
            f"p99 {inc['full_p99']:.2f} ms",
            flush=True,
        )
        worst = max(c / h for _, c, h, _, _ in rows)
        mismatched = [key for key, _, _, cc, ch in rows if cc != ch]
        print(
            f"summary: worst compiled/hand ratio {worst:.2f} (target <= 1.3); "
            f"incremental p99 {inc['decide_p99']:.2f} ms (target <= 5 ms); "
            f"member counts {'differ for ' + ', '.join(mismatched) if mismatched else 'agree'}; "
            f"{load_average()}"
        )
    finally:
        engine.dispose()
        if not args.keep:
            _drop_database(args.pg, name)


if __name__ == "__main__":
    main()
