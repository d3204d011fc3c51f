"""Group commit: the deliveries of concurrent requests are inserted and committed together.

Requests hand their deliveries to `GroupCommitter.store` (event loop) or `submit`
(threads) and wait; nothing is acknowledged before its commit. Batching is natural:
while one commit runs, the next requests queue up; an idle server commits a lone
request at once.

On PostgreSQL, `store` goes to the committer of the caller's event loop
(automation.inbox.loop_committer): one asyncio task on a psycopg AsyncConnection takes
the loop's queue, inserts and commits it, and resolves the futures itself. The thread
hand-off it replaces (the request's loop waking a committer thread, that thread waking
the loop again through call_soon_threadsafe, each taking the GIL from the other) had
become the largest cost of a stored request. Uvicorn runs one loop per worker process,
so that is one committer and one connection per process.

On SQLite (one writer at a time, a blocking driver), and for `submit` on either
database, a committer thread takes everything queued so far (up to MAX_BATCH requests),
inserts it with one statement and one commit, then answers every waiter: thread futures
directly, event-loop futures with one wake-up of their loop per batch (not one per
request).

Mapping messages for the new rows are handed to an enqueuer thread, so a slow or absent
broker never delays an answer (the scheduler maps what it misses). That thread gathers
the ids committed within ENQUEUE_GATHER_SECONDS into one send: under load a commit holds
only a few requests, and a broker send per commit (about 0.1 ms of Python each on Redis)
took a seventh of the process's GIL time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
import weakref
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import Future
from typing import TypeAlias

from sqlalchemy import Connection
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from automation.inbox.loop_committer import MAX_BATCH, LoopCommitter
from automation.inbox.mapping import Delivery
from automation.inbox.record import Recorded, prepare_writer, record_batch

log = logging.getLogger(__name__)
ENQUEUE_GATHER_SECONDS = 0.01
Waiter: TypeAlias = "Future[Recorded] | asyncio.Future[Recorded]"
Work: TypeAlias = tuple[list[Delivery], Waiter]
Answer: TypeAlias = tuple["asyncio.Future[Recorded]", "Recorded | BaseException"]


class GroupCommitter:
    """The group committer of one database: per event loop on PostgreSQL, else a thread;
    plus an enqueuer thread for mapping messages."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        enqueue: Callable[[list[int]], None],
        gather_seconds: float = ENQUEUE_GATHER_SECONDS,
    ) -> None:
        self.factory = factory
        self.enqueue = enqueue
        self.gather_seconds = gather_seconds
        self.work: queue.SimpleQueue[Work] = queue.SimpleQueue()
        self.to_enqueue: queue.SimpleQueue[list[int]] = queue.SimpleQueue()
        self.started = False
        self.enqueuing = False
        self.lock = threading.Lock()
        self.connection: Connection | None = None
        engine = factory.kw["bind"]
        self.conninfo: str | None = None  # a libpq URL: PostgreSQL commits on the loop
        if engine.dialect.name == "postgresql":
            url = engine.url.set(drivername="postgresql")
            self.conninfo = url.render_as_string(hide_password=False)
        self.loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LoopCommitter] = (
            weakref.WeakKeyDictionary()
        )

    def submit(self, deliveries: list[Delivery]) -> Future[Recorded]:
        """Queue one request's deliveries; the future resolves after their commit."""
        if not self.started:
            self.start()
        future: Future[Recorded] = Future()
        self.work.put((deliveries, future))
        return future

    async def store(self, deliveries: list[Delivery]) -> Recorded:
        """Store one request's deliveries from the event loop; returns after their commit."""
        if self.conninfo is not None:
            loop = asyncio.get_running_loop()
            committer = self.loops.get(loop)
            if committer is None:
                committer = self.loops[loop] = LoopCommitter(self.conninfo, self.hand_off)
            return await committer.store(deliveries)
        if not self.started:
            self.start()
        future: asyncio.Future[Recorded] = asyncio.get_running_loop().create_future()
        self.work.put((deliveries, future))
        return await future

    async def close_loop(self) -> None:
        """Close the running loop's PostgreSQL connection (the loop is shutting down)."""
        committer = self.loops.pop(asyncio.get_running_loop(), None)
        if committer is not None:
            await committer.close()

    def start(self) -> None:
        """Start the committer and enqueuer threads (daemon: a request in flight keeps the
        process busy anyway)."""
        with self.lock:
            if self.started:
                return
            threading.Thread(target=self.commit_loop, name="inbox-commit", daemon=True).start()
            self.started = True
        self.start_enqueuer()

    def start_enqueuer(self) -> None:
        """Start the enqueuer thread once."""
        with self.lock:
            if self.enqueuing:
                return
            threading.Thread(target=self.enqueue_loop, name="inbox-enqueue", daemon=True).start()
            self.enqueuing = True

    def hand_off(self, ids: list[int]) -> None:
        """Give committed ids to the enqueuer thread (mapping stays off the request path)."""
        if not self.enqueuing:
            self.start_enqueuer()
        self.to_enqueue.put(ids)

    def commit_loop(self) -> None:
        """Forever: take what is queued, commit it, answer the futures."""
        while True:
            batch = [self.work.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(self.work.get_nowait())
                except queue.Empty:
                    break
            # A request whose client went away was cancelled: nothing is stored for it.
            batch = [work for work in batch if still_waiting(work[1])]
            try:
                self.commit(batch)
            except Exception:  # noqa: BLE001 - the loop must outlive any one batch
                log.exception("inbox commit loop error")

    def commit(self, batch: list[Work]) -> None:
        """One transaction for the batch; on a failure other than an unreachable database,
        each request is tried alone so one bad request cannot fail the others."""
        if not batch:
            return
        try:
            results = self.record([deliveries for deliveries, _ in batch])
        except (OperationalError, InterfaceError) as exc:
            answer([(waiter, exc) for _, waiter in batch])
            return
        except Exception:  # noqa: BLE001 - isolate the request that fails
            if len(batch) == 1:
                answer([(batch[0][1], RuntimeError("inbox insert failed"))])
                log.exception("inbox insert failed")
                return
            for work in batch:
                self.commit([work])
            return
        answer([(waiter, result) for (_, waiter), result in zip(batch, results, strict=True)])
        pending = [i for result in results for i in result.pending_ids]
        if pending:
            self.hand_off(pending)

    def record(self, requests: list[list[Delivery]]) -> list[Recorded]:
        """record_batch on the thread's own connection, held between batches (a pooled
        checkout costs a ping and a reset round trip per batch). A held connection that
        died meanwhile (a database restart) is replaced and the batch tried once more:
        the insert is idempotent, so a commit that did land answers "duplicate"."""
        fresh = self.connection is None
        try:
            return self.record_on_held(requests)
        except (OperationalError, InterfaceError):
            if fresh:
                raise
            return self.record_on_held(requests)

    def record_on_held(self, requests: list[list[Delivery]]) -> list[Recorded]:
        """record_batch on the held connection (connecting first); a failure drops it."""
        if self.connection is None:
            self.connection = self.factory.kw["bind"].connect()
            prepare_writer(self.connection)
        session = self.factory(bind=self.connection)
        try:
            return record_batch(session, requests)
        except BaseException:
            session.close()
            self.connection.invalidate()
            self.connection.close()
            self.connection = None
            raise
        finally:
            session.close()

    def enqueue_loop(self) -> None:
        """Forever: send mapping messages for committed rows (best effort)."""
        while True:
            ids = self.to_enqueue.get()
            time.sleep(self.gather_seconds)  # let the next commits join this send
            while not self.to_enqueue.empty():
                ids += self.to_enqueue.get_nowait()
            try:
                self.enqueue(ids)
            except Exception:  # noqa: BLE001 - the rows are stored; the scheduler maps them
                log.warning("inbox enqueue failed", extra={"count": len(ids)})


def still_waiting(waiter: Waiter) -> bool:
    """False for a cancelled waiter (its request went away); marks thread futures running."""
    if isinstance(waiter, Future):
        return waiter.set_running_or_notify_cancel()
    return not waiter.cancelled()


def answer(outcomes: list[tuple[Waiter, Recorded | BaseException]]) -> None:
    """Resolve waiters: thread futures here, event-loop futures in one callback per loop."""
    by_loop: dict[asyncio.AbstractEventLoop, list[Answer]] = defaultdict(list)
    for waiter, outcome in outcomes:
        if isinstance(waiter, Future):
            if isinstance(outcome, BaseException):
                waiter.set_exception(outcome)
            else:
                waiter.set_result(outcome)
        else:
            by_loop[waiter.get_loop()].append((waiter, outcome))
    for loop, answers in by_loop.items():
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            loop.call_soon_threadsafe(settle, answers)


def settle(answers: list[Answer]) -> None:
    """In the event loop: resolve the futures still waiting."""
    for future, outcome in answers:
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
