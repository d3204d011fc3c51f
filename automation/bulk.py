"""Bulk writes for batch jobs (CSV import): one statement per batch on every backend.

PostgreSQL gets `INSERT ... SELECT FROM unnest(arrays)` and `UPDATE ... FROM unnest(...)`:
a handful of array parameters instead of thousands of scalar ones, which is several
times faster than executemany/multi-row VALUES through psycopg. Other backends
(SQLite) use SQLAlchemy Core executemany, which is already fast there.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import JSON, Connection, Table, bindparam, insert, text, update
from sqlalchemy.dialects import postgresql

_PG = postgresql.dialect()  # type: ignore[no-untyped-call]


def _is_pg(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql"


def _array(table: Table, column: str, values: list[Any]) -> tuple[str, list[Any]]:
    """SQL for one unnest argument and its parameter value."""
    col = table.c[column]
    if isinstance(col.type, JSON):
        dumped = [None if v is None else json.dumps(v, ensure_ascii=False) for v in values]
        return f"CAST(:{column} AS text[])::jsonb[]", dumped
    sql_type = col.type.dialect_impl(_PG)
    impl = getattr(sql_type, "impl", sql_type)
    name = impl.compile(dialect=_PG)
    return f"CAST(:{column} AS {name}[])", values


def allocate_ids(conn: Connection, table: Table, count: int) -> list[int] | None:
    """Reserve `count` primary keys from the table's sequence (PostgreSQL); None elsewhere."""
    if not _is_pg(conn) or count == 0:
        return None
    rows = conn.execute(
        text(
            "SELECT nextval(pg_get_serial_sequence(:table, 'id')) "
            "FROM generate_series(1, :count)"
        ),
        {"table": table.name, "count": count},
    )
    return [int(value) for value in rows.scalars()]


def bulk_insert(conn: Connection, table: Table, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that all have the same keys."""
    if not rows:
        return
    if not _is_pg(conn):
        conn.execute(insert(table), list(rows))
        return
    columns = list(rows[0])
    quote = _PG.identifier_preparer.quote
    args, params = [], {}
    for column in columns:
        sql, params[column] = _array(table, column, [row[column] for row in rows])
        args.append(sql)
    conn.execute(
        text(
            f"INSERT INTO {quote(table.name)} ({', '.join(quote(c) for c in columns)}) "
            f"SELECT * FROM unnest({', '.join(args)})"
        ),
        params,
    )


def bulk_update(
    conn: Connection, table: Table, rows: Sequence[dict[str, Any]], key: str = "id"
) -> None:
    """Update rows by primary key; every row has `key` plus the same columns to set."""
    if not rows:
        return
    columns = [c for c in rows[0] if c != key]
    if not _is_pg(conn):
        statement = (
            update(table)
            .where(table.c[key] == bindparam(f"k_{key}"))
            .values({c: bindparam(f"v_{c}", type_=table.c[c].type) for c in columns})
        )
        conn.execute(
            statement,
            [{f"k_{key}": row[key], **{f"v_{c}": row[c] for c in columns}} for row in rows],
        )
        return
    quote = _PG.identifier_preparer.quote
    args, params = [], {}
    for column in (key, *columns):
        sql, params[column] = _array(table, column, [row[column] for row in rows])
        args.append(sql)
    names = ", ".join(quote(c) for c in (key, *columns))
    assignments = ", ".join(f"{quote(c)} = d.{quote(c)}" for c in columns)
    conn.execute(
        text(
            f"UPDATE {quote(table.name)} AS t SET {assignments} "
            f"FROM unnest({', '.join(args)}) AS d({names}) WHERE t.{quote(key)} = d.{quote(key)}"
        ),
        params,
    )
