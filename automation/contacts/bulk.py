"""Bulk reads and writes for batch jobs (CSV import): a few statements per batch.

PostgreSQL gets COPY (inserts; updates go through COPY into a temporary table and one
UPDATE ... FROM) and `= ANY(array)` lookups: far less client CPU than executemany or
thousands of scalar parameters through psycopg. Other backends (SQLite) use SQLAlchemy
Core executemany and IN lists, which are already fast there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Connection,
    Table,
    text,
)
from sqlalchemy.dialects import postgresql

from automation.core.db import is_postgres

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _copy(conn: Connection, table: str, columns: list[str], rows: Sequence[Sequence[Any]]) -> None:
    """COPY rows into a table on the connection's own transaction (psycopg 3)."""
    quote = _PG.identifier_preparer.quote
    raw: Any = conn.connection.driver_connection
    with raw.cursor() as cursor:
        statement = f"COPY {quote(table)} ({', '.join(quote(c) for c in columns)}) FROM STDIN"
        with cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)


def _values(table: Table, columns: list[str], rows: Sequence[dict[str, Any]]) -> list[list[Any]]:
    """Row values in column order, JSON columns serialised for COPY."""
    json_columns = {c for c in columns if isinstance(table.c[c].type, JSON)}
    return [
        [
            json.dumps(row[c], ensure_ascii=False)
            if c in json_columns and row[c] is not None
            else row[c]
            for c in columns
        ]
        for row in rows
    ]


def allocate_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """Reserve `count` new primary keys for explicit-id inserts in this transaction.

    PostgreSQL: from the table's sequence. SQLite: take the write lock first (a no-op
    UPDATE), so max(id)+1.. stays ours until commit; that is what SQLite itself assigns.
    """
    if count == 0:
        return []
    if is_postgres(conn):
        rows = conn.execute(
            text(
                "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
                "FROM generate_series(1, :count)"
            ),
            {"table": table.name, "count": count},
        )
        return [int(value) for value in rows.scalars()]
    quote = conn.dialect.identifier_preparer.quote
    conn.exec_driver_sql(f"UPDATE {quote(table.name)} SET id = id WHERE 0")
    start = conn.exec_driver_sql(f"SELECT max(id) FROM {quote(table.name)}").scalar() or 0
    return list(range(int(start) + 1, int(start) + 1 + count))


def _driver_rows(
    conn: Connection, table: Table, columns: list[str], rows: Sequence[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """Row tuples converted by each column type's bind processor (for exec_driver_sql)."""
    dialect = conn.dialect
    processors = [
        table.c[c].type.dialect_impl(dialect).bind_processor(dialect) for c in columns
    ]
    pairs = list(zip(columns, processors, strict=True))
    return [
        tuple(row[c] if p is None or row[c] is None else p(row[c]) for c, p in pairs)
        for row in rows
    ]


def bulk_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that all have the same keys."""
    if not rows:
        return
    columns = list(rows[0])
    if not is_postgres(conn):
        quote = conn.dialect.identifier_preparer.quote
        marks = ", ".join("?" for _ in columns)
        conn.exec_driver_sql(
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
            f"VALUES ({marks})",
            _driver_rows(conn, table, columns, rows),
        )
        return
    _copy(conn, table.name, columns, _values(table, columns, rows))


def bulk_update(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], key: str = "id"
) -> None:
    """Update rows by primary key; every row has `key` plus the same columns to set."""
    if not rows:
        return
    columns = [c for c in rows[0] if c != key]
    if not is_postgres(conn):
        quote = conn.dialect.identifier_preparer.quote
        assignments = ", ".join(f"{quote(c)} = ?" for c in columns)
        conn.exec_driver_sql(
            f"UPDATE {quote(table.name)} SET {assignments} WHERE {quote(key)} = ?",
            _driver_rows(conn, table, [*columns, key], rows),
        )
        return
    quote = _PG.identifier_preparer.quote
    names = [key, *columns]
    scratch = f"bulk_{uuid.uuid4().hex[:12]}"
    conn.execute(
        text(
            f"CREATE TEMPORARY TABLE {scratch} AS SELECT "
            f"{', '.join(quote(c) for c in names)} FROM {quote(table.name)} WITH NO DATA"
        )
    )
    _copy(conn, scratch, names, _values(table, names, rows))
    assignments = ", ".join(f"{quote(c)} = d.{quote(c)}" for c in columns)
    conn.execute(
        text(
            f"UPDATE {quote(table.name)} AS t SET {assignments} "
            f"FROM {scratch} AS d WHERE t.{quote(key)} = d.{quote(key)}"
        )
    )
    conn.execute(text(f"DROP TABLE {scratch}"))
