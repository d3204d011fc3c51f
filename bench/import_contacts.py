"""Benchmark `mactl contacts import`: 100k CSV rows on SQLite and PostgreSQL.

Creates throw-away databases, imports a generated CSV (Vietnamese names, local
phone formats, consents, tags, a custom attribute), then imports it again (all
updates). Prints rows/s for both passes. Target: 100k rows well under a minute.

    python bench/import_contacts.py [--rows 100000] [--pg postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import csv
import random
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.orm import Session

from automation.contacts.importer import import_rows, read_csv
from automation.core.migrate import upgrade

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng"]
MIDDLE = ["Thị", "Văn", "Minh", "Ngọc", "Thanh", "Hữu", "Đức", "Thu"]
GIVEN = ["An", "Bình", "Chi", "Dũng", "Giang", "Hà", "Hùng", "Lan", "Mai", "Nam", "Quỳnh", "Tú"]
CITIES = ["Hà Nội", "Hồ Chí Minh", "Đà Nẵng", "Hải Phòng", "Cần Thơ", "Huế"]
PREFIXES = ["090", "091", "093", "094", "096", "097", "098", "086", "088", "070", "077", "079"]


def make_csv(path: Path, rows: int, seed: int = 7) -> None:
    """Write `rows` contacts with unique emails and phones in mixed local formats."""
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            [
                "email", "phone", "first_name", "last_name", "consent_email", "consent_sms",
                "consent_zalo", "tags", "city", "external_id",
            ]
        )
        for i in range(rows):
            prefix = PREFIXES[i % len(PREFIXES)]
            number = f"{prefix}{i:07d}"
            phone = rng.choice(
                [number, f"{number[:4]} {number[4:7]} {number[7:]}", "+84" + number[1:]]
            )
            writer.writerow(
                [
                    f"user{i}@example.vn",
                    phone,
                    rng.choice(GIVEN),
                    f"{rng.choice(FAMILY)} {rng.choice(MIDDLE)}",
                    rng.choice(["yes", "no", ""]),
                    rng.choice(["1", "0", ""]),
                    rng.choice(["true", ""]),
                    rng.choice(["vip", "new,hcm", ""]),
                    rng.choice(CITIES),
                    f"c{i}",
                ]
            )


def run_import(url: str, path: Path) -> tuple[float, float, int, int, int]:
    """Import the file the way the CLI does (commit per batch).

    Returns (wall seconds, this process's CPU seconds, created, updated, failed).
    """
    engine = sa.create_engine(url)
    with Session(engine) as session:
        _, rows = read_csv(path)
        started, cpu = time.perf_counter(), time.process_time()
        report = import_rows(session, rows, on_batch=lambda _n: session.commit())
        session.commit()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    return seconds, cpu, report.created, report.updated, report.failed


def bench(name: str, url: str, path: Path, rows: int) -> None:
    """Fresh import then re-import on one backend; prints one line each."""
    upgrade(url)
    for label in ("create", "update"):
        seconds, cpu, created, updated, failed = run_import(url, path)
        print(
            f"{name:<10} {label:<7} rows={rows} created={created} updated={updated} "
            f"failed={failed} seconds={seconds:.1f} cpu={cpu:.1f} rows/s={rows / seconds:,.0f}",
            flush=True,
        )


def main() -> None:
    """Parse arguments and run the benchmark on SQLite and (if reachable) PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--pg", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "contacts.csv"
        make_csv(path, args.rows)
        bench("sqlite", f"sqlite:///{Path(tmp) / 'bench.db'}", path, args.rows)
        admin = sa.create_engine(args.pg, isolation_level="AUTOCOMMIT")
        name = f"ma_bench_{uuid.uuid4().hex[:8]}"
        try:
            with admin.connect() as conn:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        except sa.exc.OperationalError as exc:
            print(f"postgresql skipped: {str(exc.orig).splitlines()[0]}")
            return
        try:
            bench("postgresql", args.pg.rsplit("/", 1)[0] + f"/{name}", path, args.rows)
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()


if __name__ == "__main__":
    main()
