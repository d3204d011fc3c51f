"""PostgreSQL group commit on the event loop: one asyncio task per loop, no threads.

Requests append their deliveries to the loop's queue and await a future. One task (started
when the queue goes from empty to busy, ended when it is empty again) takes everything
queued (up to MAX_BATCH requests), runs record.py's unnest INSERT ... RETURNING on its
own psycopg AsyncConnection, commits, looks up the ids of redeliveries, and resolves the
futures itself: no GIL hand-off between threads, no call_soon_threadsafe wake-up. While
one commit awaits the server, the next requests queue; an idle loop commits a lone
request at the next iteration.

The promises are the thread committer's: nothing is answered before its commit; a
request cancelled before its batch is taken (its client went away) stores nothing; a
batch that fails for a reason other than an unreachable database is tried one request at
a time; a held connection that died (a server restart) is replaced and the batch tried
once more (the insert is idempotent: a commit that did land answers "duplicate"); an
unreachable database reaches every waiter as SQLAlchemy's OperationalError or
InterfaceError, which the app answers 503 (automation.ingest.unavailable).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TypeAlias

import psycopg
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from automation.core.clock import now
from automation.inbox.mapping import Delivery
from automation.inbox.record import (
    LZ4_BODIES,
    ROWS_INSERT,
    STORED_IDS,
    Key,
    Recorded,
    key_columns,
    missing_keys,
    recorded,
    unnested,
)

log = logging.getLogger(__name__)
MAX_BATCH = 256
Work: TypeAlias = tuple[list[Delivery], "asyncio.Future[Recorded]"]
UNREACHABLE = (psycopg.OperationalError, psycopg.InterfaceError)


class LoopCommitter:
    """The group committer of one event loop on PostgreSQL (`conninfo`: a libpq URL)."""

    def __init__(self, conninfo: str, committed: Callable[[list[int]], None]) -> None:
        self.conninfo = conninfo
        self.committed = committed  # gets the ids to map (off the request path)
        self.queue: list[Work] = []
        self.running = False
        self.task: asyncio.Task[None] | None = None  # referenced: a task is weakly held
        self.connection: psycopg.AsyncConnection[tuple[object, ...]] | None = None

    async def store(self, deliveries: list[Delivery]) -> Recorded:
        """Queue one request's deliveries; returns after their commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Recorded] = loop.create_future()
        self.queue.append((deliveries, future))
        if not self.running:
            self.running = True
            self.task = loop.create_task(self.drain())
        return await future

    async def drain(self) -> None:
        """Commit batches until the queue is empty."""
        try:
            while self.queue:
                batch, self.queue = self.queue[:MAX_BATCH], self.queue[MAX_BATCH:]
                # A request whose client went away was cancelled: nothing is stored for it.
                batch = [work for work in batch if not work[1].cancelled()]
                try:
                    await self.commit(batch)
                except Exception:  # noqa: BLE001 - the task must outlive any one batch
                    log.exception("inbox commit task error")
        finally:
            self.running = False

    async def commit(self, batch: list[Work]) -> None:
        """One transaction for the batch; on a failure other than an unreachable database,
        each request is tried alone so one bad request cannot fail the others."""
        if not batch:
            return
        try:
            results = await self.record([deliveries for deliveries, _ in batch])
        except UNREACHABLE as exc:
            error = as_sqlalchemy(exc)
            for _, future in batch:
                settle(future, error)
            return
        except Exception:  # noqa: BLE001 - isolate the request that fails
            if len(batch) == 1:
                log.exception("inbox insert failed")
                settle(batch[0][1], RuntimeError("inbox insert failed"))
                return
            for work in batch:
                await self.commit([work])
            return
        for (_, future), result in zip(batch, results, strict=True):
            settle(future, result)
        pending = [i for result in results for i in result.pending_ids]
        if pending:
            self.committed(pending)

    async def record(self, requests: list[list[Delivery]]) -> list[Recorded]:
        """record_on_held; a held connection that died meanwhile is replaced and the batch
        tried once more (a fresh connection that fails means the database is unreachable)."""
        fresh = self.connection is None
        try:
            return await self.record_on_held(requests)
        except UNREACHABLE:
            if fresh:
                raise
            return await self.record_on_held(requests)

    async def record_on_held(self, requests: list[list[Delivery]]) -> list[Recorded]:
        """The batch on the held connection (connecting first); any failure drops it."""
        if self.connection is None:
            self.connection = await connect(self.conninfo)
        try:
            return await record_batch(self.connection, requests)
        except BaseException:
            connection, self.connection = self.connection, None
            await connection.close()
            raise

    async def close(self) -> None:
        """Close the held connection (the loop is shutting down)."""
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.close()


async def connect(conninfo: str) -> psycopg.AsyncConnection[tuple[object, ...]]:
    """A writer connection: bodies TOAST-compressed with lz4 where the server has it
    (see record.prepare_writer)."""
    connection = await psycopg.AsyncConnection.connect(conninfo)
    try:
        await connection.execute(LZ4_BODIES)
        await connection.commit()
    except psycopg.OperationalError:
        await connection.close()
        raise
    except psycopg.Error:
        await connection.rollback()
    return connection


async def record_batch(
    connection: psycopg.AsyncConnection[tuple[object, ...]], requests: list[list[Delivery]]
) -> list[Recorded]:
    """record.record_batch on an async connection: one INSERT, one commit, then the ids
    of redeliveries; a key repeated in the batch is new for its first request only."""
    flat = [d for deliveries in requests for d in deliveries]
    async with connection.cursor() as cursor:
        await cursor.execute(ROWS_INSERT, unnested(flat, now()), prepare=True)
        inserted: dict[Key, int] = {(s, k): i for s, k, i in await cursor.fetchall()}  # type: ignore[misc]
        await connection.commit()
        known = dict(inserted)
        missing = missing_keys(flat, known)
        if missing:
            await cursor.execute(STORED_IDS, key_columns(missing), prepare=True)
            known.update({(s, k): i for s, k, i in await cursor.fetchall()})  # type: ignore[misc]
            await connection.rollback()
    return recorded(requests, inserted, known)


def as_sqlalchemy(exc: Exception) -> DBAPIError:
    """The driver's connection error as SQLAlchemy raises it (what the app answers 503)."""
    kind = InterfaceError if isinstance(exc, psycopg.InterfaceError) else OperationalError
    return kind(None, None, exc)


def settle(future: asyncio.Future[Recorded], outcome: Recorded | BaseException) -> None:
    """Resolve a future still waiting (a cancelled one is left alone)."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
