"""Benchmark `mactl report` on PostgreSQL: 100k contacts, 1M messages.

Creates a throw-away database, migrates it, applies the shipped playbooks plus one
sequence with a 10% holdout and an A/B split, then loads with INSERT ... SELECT
generate_series: contacts, ~250k enrollments (holdout flags and arms in their context),
1M messages (4 per treated enrollment), ~0.7M message events (delivered, opened,
clicked, some bounces, complaints and unsubscribes), fallback messages, orders,
attributions and goal conversions. ANALYZE, then times `mactl report --json` as a
subprocess (best and median of --repeat), the whole base and one sequence for one week.

    python bench/report.py [--contacts 100000] [--repeat 3]
                           [--pg postgresql+psycopg://postgres@127.0.0.1:5432/postgres]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from automation.apply import apply_paths  # noqa: E402
from automation.core.migrate import upgrade  # noqa: E402
from automation.sequences.schema import parse_sequence_text  # noqa: E402
from automation.sequences.store import apply_definition  # noqa: E402

BENCH_SEQUENCE = """
sequence: bench_offer
purpose: marketing
trigger: {event: lead.captured}
holdout: 10%
steps:
  - split:
      - {name: a, percent: 50, steps: [{send: {channel: email, template: ab/a}}]}
      - {name: b, percent: 50, steps: [{send: {channel: email, template: ab/b}}]}
"""

LOAD_SQL = [
    "SELECT setseed(0.42)",
    """
    INSERT INTO contacts (email, first_name, attributes, tags, orders_count, total_spent,
        last_inbound_at, created_at, updated_at)
    SELECT 'b' || g || '@shop.vn', 'Lan', '{}'::jsonb, '[]'::jsonb, 0, 0, '{}'::jsonb,
        now(), now()
    FROM generate_series(1, :contacts) g
    """,
    # Each sequence enrols ~5/12 of the contacts over 30 days.
    """
    INSERT INTO enrollments (sequence_id, version_id, contact_id, state, cursor, context,
        exit_reason, entered_at, finished_at)
    SELECT s.id, s.current_version_id, c.id, 'done', '9',
        CASE WHEN s.key = 'bench_offer' THEN
            CASE WHEN random() < 0.1 THEN '{"holdout": true, "variants": {"0": "a"}}'::jsonb
                 WHEN c.id % 2 = 0 THEN '{"variants": {"0": "a"}}'::jsonb
                 ELSE '{"variants": {"0": "b"}}'::jsonb END
        ELSE '{}'::jsonb END,
        NULL, now() - make_interval(days => (random() * 30)::int), now()
    FROM sequences s CROSS JOIN contacts c
    WHERE (c.id + s.id) % 12 < 5
    """,
    # Four messages per treated enrollment: 1M for 100k contacts and 6 sequences.
    """
    INSERT INTO messages (enrollment_id, step_key, contact_id, channel, purpose, template,
        address, status, attempts, fallback, rendered, links, created_at, updated_at, sent_at)
    SELECT e.id, k::text, e.contact_id,
        (ARRAY['email', 'zalo_zns', 'sms', 'email'])[1 + (e.id + k) % 4], 'marketing', 't/x',
        'b@shop.vn',
        CASE WHEN r < 0.02 THEN 'bounced' WHEN r < 0.04 THEN 'failed' ELSE 'sent' END,
        1, '[]'::jsonb, '{}'::jsonb, '{}'::jsonb,
        e.entered_at + make_interval(days => k), e.entered_at + make_interval(days => k),
        CASE WHEN r < 0.04 AND r >= 0.02 THEN NULL ELSE e.entered_at + make_interval(days => k) END
    FROM enrollments e CROSS JOIN generate_series(0, 3) k
    CROSS JOIN LATERAL (SELECT random() + 0 * (e.id + k) AS r) x
    WHERE NOT (e.context ? 'holdout')
    """,
    # Fallbacks: every failed message handed over to sms once.
    """
    INSERT INTO messages (enrollment_id, step_key, contact_id, channel, purpose, template,
        status, attempts, fallback, rendered, links, created_at, updated_at, sent_at,
        fallback_from_id)
    SELECT enrollment_id, step_key || '#fallback:sms', contact_id, 'sms', purpose, template,
        'sent', 1, '[]'::jsonb, '{}'::jsonb, '{}'::jsonb, created_at, updated_at, created_at, id
    FROM messages WHERE status = 'failed'
    """,
    """
    INSERT INTO message_events (message_id, type, provider, provider_event_id, occurred_at,
        payload)
    SELECT m.id, t.type, 'bench', t.type || ':' || m.id, m.sent_at + interval '1 hour', '{}'
    FROM messages m
    CROSS JOIN LATERAL (SELECT random() + 0 * m.id AS r) x
    CROSS JOIN LATERAL (
        SELECT 'delivered' AS type WHERE m.channel <> 'email' AND m.status = 'sent'
        UNION ALL SELECT 'opened' WHERE x.r < 0.25 AND m.status = 'sent'
        UNION ALL SELECT 'clicked' WHERE x.r < 0.08 AND m.status = 'sent'
        UNION ALL SELECT 'bounced' WHERE m.status = 'bounced'
        UNION ALL SELECT 'complained' WHERE x.r > 0.999
        UNION ALL SELECT 'unsubscribed' WHERE x.r > 0.997
    ) t
    WHERE m.sent_at IS NOT NULL OR m.status = 'bounced'
    """,
    # Orders: one per clicked message's contact (~80k), credited to that message.
    """
    INSERT INTO orders (source, external_id, contact_id, status, total, currency, placed_at,
        updated_at)
    SELECT 'bench', 'o' || me.message_id, m.contact_id,
        CASE WHEN me.message_id % 20 = 0 THEN 'refunded' ELSE 'open' END,
        100000 + (me.message_id % 50) * 25000, 'VND', me.occurred_at + interval '1 day', now()
    FROM message_events me JOIN messages m ON m.id = me.message_id
    WHERE me.type = 'clicked'
    """,
    """
    INSERT INTO attributions (order_id, message_id, enrollment_id, sequence_id, version_id,
        contact_id, step_key, channel, model, revenue, attributed_at, reversed_at)
    SELECT o.id, m.id, m.enrollment_id, e.sequence_id, e.version_id, m.contact_id,
        m.step_key, m.channel, 'click', o.total, o.placed_at,
        CASE WHEN o.status = 'refunded' THEN o.placed_at + interval '3 days' END
    FROM orders o
    JOIN messages m ON m.id = substr(o.external_id, 2)::bigint
    JOIN enrollments e ON e.id = m.enrollment_id
    """,
    """
    INSERT INTO goal_conversions (enrollment_id, sequence_id, contact_id, order_id, revenue,
        holdout, converted_at)
    SELECT DISTINCT ON (a.enrollment_id) a.enrollment_id, a.sequence_id, a.contact_id,
        a.order_id, a.revenue, false, a.attributed_at
    FROM attributions a ORDER BY a.enrollment_id, a.id
    """,
    """
    INSERT INTO goal_conversions (enrollment_id, sequence_id, contact_id, revenue, holdout,
        converted_at)
    SELECT e.id, e.sequence_id, e.contact_id, 300000, true, e.entered_at + interval '2 days'
    FROM enrollments e WHERE e.context ? 'holdout' AND random() < 0.04
    """,
]


def load(url: str, contacts: int) -> dict[str, int]:
    """Create the data set; returns row counts."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        for sql in LOAD_SQL:
            conn.execute(sa.text(sql), {"contacts": contacts})
        counts = {
            table: int(conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one())
            for table in ("contacts", "enrollments", "messages", "message_events",
                          "orders", "attributions", "goal_conversions")
        }  # fmt: skip
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("ANALYZE"))
    engine.dispose()
    return counts


def time_report(url: str, args: list[str], repeat: int) -> tuple[list[float], dict[str, object]]:
    """Run `mactl report --json` ``repeat`` times; wall seconds and the last report."""
    env = {"SECRET_KEY": "bench-report-secret-0123456789abcdef", **os.environ}
    env.update(DATABASE_URL=url, PYTHONPATH=str(ROOT))
    times, report = [], {}
    for _ in range(repeat):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "admin_cli.main", "report", "--json", *args],
            env=env, capture_output=True, text=True, check=False, cwd=ROOT,
        )  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"mactl report failed: {done.stderr.strip()}")
        times.append(time.perf_counter() - started)
        report = json.loads(done.stdout)
    return times, report


def main() -> None:
    """Build the data set, time the report, drop the database."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="Keep the database afterwards.")
    options = parser.parse_args()
    name = f"ma_bench_report_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(options.pg, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = options.pg.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        engine = sa.create_engine(url)
        with sa.orm.Session(engine) as session:
            apply_paths(session, [ROOT / "playbooks"])
            bench = parse_sequence_text(textwrap.dedent(BENCH_SEQUENCE), "bench.yaml")
            apply_definition(session, bench)
            session.commit()
        engine.dispose()
        started = time.perf_counter()
        counts = load(url, options.contacts)
        print(f"loaded in {time.perf_counter() - started:.1f} s: {counts}")
        week_ago = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 7 * 86400))
        for label, args in (
            ("whole base", []),
            ("one sequence, 7 days", ["--sequence", "bench_offer", "--since", week_ago]),
        ):
            times, report = time_report(url, args, options.repeat)
            sent = report["totals"]["sent"]  # type: ignore[index]
            print(
                f"mactl report --json ({label}): best {min(times):.2f} s, "
                f"median {statistics.median(times):.2f} s over {len(times)} runs "
                f"({sent} messages sent in the cohort)"
            )
        offer = [s for s in report["sequences"] if s["key"] == "bench_offer"]  # type: ignore[index]
        if offer:
            print("bench_offer verdict:", offer[0]["splits"][0]["verdict"]["text"])
            print("bench_offer holdout lift:", offer[0]["holdout"]["lift"])
    finally:
        if not options.keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
