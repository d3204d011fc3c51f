"""The request path's only write: one INSERT ... ON CONFLICT DO NOTHING, then commit.

A redelivery (same source and dedupe key) inserts nothing and gets the stored row's id,
so two identical deliveries racing each other store one row and never fail.

On PostgreSQL the batch is ONE prepared statement whatever its size: the rows travel as
binary arrays, one per column, expanded by unnest(). Against the driver's pipelined
executemany of a single-row statement (one Bind/Execute per row) it halves the
process's CPU per row (about 18 against 36 us at 16 rows per batch, 8 against 23 at 64)
and cuts the server's by a quarter; SQLAlchemy's multi-row VALUES cost about 120 us per
row (a new statement text per batch size, parsed again by the driver).

The SQL (ROWS_INSERT, STORED_IDS) and the pure steps (`unnested`, `missing_keys`,
`recorded`: who is new, who is a duplicate) are shared with the event-loop committer
(automation.inbox.loop_committer), which runs the same batch on psycopg's async
connection; only the awaiting differs.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Dialect, select, tuple_
from sqlalchemy.orm import Session

from automation.core import jsoncodec
from automation.core.clock import now
from automation.core.db import is_postgres
from automation.core.models_inbox import InboxDelivery
from automation.inbox import PENDING
from automation.inbox.mapping import Delivery

# SQLite has one writer at a time and its busy handler sleeps in steps of up to 100 ms;
# queueing this process's writers on a lock instead keeps ingest latency low.
_SQLITE_WRITER = threading.Lock()
SQLITE_ROW_INSERT = (
    "INSERT INTO inbox (source, topic, dedupe_key, headers, body, received_at, status,"
    " reason, attempts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0)"
    " ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING id"
)
# %b: binary parameters (a text bytea[] would spell every body out in hex)
ROWS_INSERT = (
    "INSERT INTO inbox (source, topic, dedupe_key, headers, body, received_at, status,"
    " reason, attempts)"
    " SELECT source, topic, dedupe_key, headers::jsonb, body, %b, status, reason, 0"
    " FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::bytea[], %b::text[],"
    " %b::text[]) AS batch(source, topic, dedupe_key, headers, body, status, reason)"
    " ON CONFLICT (source, dedupe_key) DO NOTHING RETURNING source, dedupe_key, id"
)
# the ids of redeliveries: one statement whatever the number of keys
STORED_IDS = (
    "SELECT source, dedupe_key, id FROM inbox WHERE (source, dedupe_key) IN"
    " (SELECT * FROM unnest(%b::text[], %b::text[]))"
)
LZ4_BODIES = "SET default_toast_compression = lz4"
Key = tuple[str, str]


def prepare_writer(connection: Connection) -> None:
    """PostgreSQL: TOAST-compress the bodies this connection stores with lz4, not pglz.

    A 5-7 KB order body is compressed on insert; pglz made that the largest part of the
    server's CPU per stored delivery (about 75 us per row against 45 with lz4, measured
    at 16 rows per statement). Reading does not care: each value records its method.
    The column keeps the default method, so this session setting decides; a server built
    without lz4 refuses it and keeps pglz. Nothing to do on SQLite.
    """
    if not is_postgres(connection):
        return
    driver: Any = connection.connection.driver_connection  # psycopg.Connection
    try:  # on the driver: a setting, not a transaction of the inbox
        driver.execute(LZ4_BODIES)
        driver.commit()
    except psycopg.Error:
        driver.rollback()


@contextmanager
def writer(session: Session) -> Iterator[None]:
    """Hold this process's SQLite write lock (nothing on PostgreSQL)."""
    if is_postgres(session):
        yield
        return
    with _SQLITE_WRITER:
        yield


@dataclass
class Recorded:
    """Inbox ids of a request's deliveries in request order; which were new; which to map."""

    ids: list[int] = field(default_factory=list)
    new_ids: list[int] = field(default_factory=list)
    pending_ids: list[int] = field(default_factory=list)
    quarantined: int = 0

    @property
    def duplicate(self) -> bool:
        """True when every delivery was already stored."""
        return bool(self.ids) and not self.new_ids


def record(session: Session, deliveries: list[Delivery]) -> Recorded:
    """Insert one request's deliveries not stored yet and commit."""
    return record_batch(session, [deliveries])[0]


def record_batch(session: Session, requests: list[list[Delivery]]) -> list[Recorded]:
    """Insert the deliveries of several requests in one statement and one commit.

    A key repeated across the batch (two identical deliveries racing) is new for the
    first request that carries it and a duplicate for the others.
    """
    flat = [d for deliveries in requests for d in deliveries]
    with writer(session):
        inserted = insert_new(session, flat)
        session.commit()
    known = dict(inserted)
    missing = missing_keys(flat, known)
    if missing:  # redeliveries: the ids stored before
        known.update(stored_ids(session, missing))
        session.rollback()
    return recorded(requests, inserted, known)


def missing_keys(deliveries: list[Delivery], known: dict[Key, int]) -> list[Key]:
    """The (source, dedupe_key) pairs of `deliveries` that this insert did not store."""
    return list({(d.source, d.dedupe_key) for d in deliveries} - set(known))


def recorded(
    requests: list[list[Delivery]], inserted: dict[Key, int], known: dict[Key, int]
) -> list[Recorded]:
    """Each request's answer from the keys this insert stored (`inserted`, consumed) and
    every key's id (`known`): a key is new for the first request that carries it."""
    results = []
    for deliveries in requests:
        result = Recorded()
        for delivery in deliveries:
            key = (delivery.source, delivery.dedupe_key)
            result.ids.append(known[key])
            if inserted.pop(key, None) is None:  # stored before, or by an earlier request
                continue
            result.new_ids.append(known[key])
            if delivery.status == PENDING:
                result.pending_ids.append(known[key])
            else:
                result.quarantined += 1
        results.append(result)
    return results


def stored_ids(session: Session, keys: list[Key]) -> dict[Key, int]:
    """The ids stored before for `keys` (PostgreSQL: STORED_IDS on the driver)."""
    if is_postgres(session):
        driver: Any = session.connection().connection.driver_connection  # psycopg.Connection
        with driver.cursor() as cursor:
            cursor.execute(STORED_IDS, key_columns(keys))
            return {(s, k): i for s, k, i in cursor.fetchall()}
    found = session.execute(
        select(InboxDelivery.source, InboxDelivery.dedupe_key, InboxDelivery.id).where(
            tuple_(InboxDelivery.source, InboxDelivery.dedupe_key).in_(keys)
        )
    )
    return {(s, k): i for s, k, i in found}


def key_columns(keys: list[Key]) -> tuple[list[str], list[str]]:
    """STORED_IDS's parameters: the sources and the dedupe keys, as two arrays."""
    return [source for source, _ in keys], [key for _, key in keys]


def insert_new(session: Session, deliveries: list[Delivery]) -> dict[Key, int]:
    """Insert the deliveries whose (source, dedupe_key) is not stored yet; their new ids."""
    received = now()
    if is_postgres(session):
        return insert_unnested(session, deliveries, received)
    return insert_sqlite(session, deliveries, received)


def insert_sqlite(
    session: Session, deliveries: list[Delivery], received: datetime
) -> dict[Key, int]:
    """SQLite: one cached single-row statement per delivery on the driver's cursor, in the
    session's transaction. SQLAlchemy's executemany with RETURNING cost most of the
    committer thread's time (compiling, result objects) for what the driver does in C;
    the JSON and time values still go through the columns' own bind processors."""
    to_json, to_time = bind_processors(session.get_bind().dialect)
    when = to_time(received)
    driver: Any = session.connection().connection.driver_connection  # sqlite3.Connection
    cursor = driver.cursor()
    stored: dict[tuple[str, str], int] = {}
    try:
        for d in deliveries:
            row = cursor.execute(SQLITE_ROW_INSERT, (
                d.source, d.topic, d.dedupe_key, to_json(d.headers), d.body, when, d.status,
                d.reason,
            )).fetchone()
            if row is not None:  # None: stored before (or earlier in this batch)
                stored[(d.source, d.dedupe_key)] = row[0]
    finally:
        cursor.close()
    return stored


@functools.cache
def bind_processors(dialect: Dialect) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
    """The headers and received_at columns' bind processors for `dialect` (JSON text with
    the engine's serializer; naive UTC time as SQLite stores it)."""
    columns = InboxDelivery.__table__.c
    processors = [columns.headers.type.bind_processor(dialect),
                  columns.received_at.type.bind_processor(dialect)]
    return tuple(p or (lambda value: value) for p in processors)  # type: ignore[return-value]


def insert_unnested(
    session: Session, deliveries: list[Delivery], received: datetime
) -> dict[Key, int]:
    """PostgreSQL: one INSERT ... SELECT FROM unnest(column arrays) in the session's
    transaction, on the driver's connection (a key repeated in the batch is inserted once)."""
    driver: Any = session.connection().connection.driver_connection  # psycopg.Connection
    with driver.cursor() as cursor:
        cursor.execute(ROWS_INSERT, unnested(deliveries, received), prepare=True)
        return {(source, key): id_ for source, key, id_ in cursor.fetchall()}


def unnested(deliveries: list[Delivery], received: datetime) -> tuple[Any, ...]:
    """ROWS_INSERT's parameters: the receipt time, then one array per column."""
    return (
        received,
        [d.source for d in deliveries],
        [d.topic for d in deliveries],
        [d.dedupe_key for d in deliveries],
        [jsoncodec.dumps(d.headers) for d in deliveries],
        [d.body for d in deliveries],
        [d.status for d in deliveries],
        [d.reason for d in deliveries],
    )
