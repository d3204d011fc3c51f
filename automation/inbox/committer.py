"""Group commit: one thread inserts the deliveries of concurrent requests together.

Requests hand their deliveries to `GroupCommitter.submit` and wait on the returned
future. The committer thread takes everything queued so far (up to MAX_BATCH requests),
inserts it with one statement and one commit (one fsync on PostgreSQL for the lot),
then answers every future. Nothing is acknowledged before its commit. Batching is
natural: while one commit runs, the next requests queue up; an idle server commits a
lone request at once. Mapping messages for the new rows are handed to a second thread,
so a slow or absent broker never delays an answer (the scheduler maps what it misses).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future

from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from automation.inbox.mapping import Delivery
from automation.inbox.record import Recorded, record_batch

log = logging.getLogger(__name__)
MAX_BATCH = 256
Work = tuple[list[Delivery], "Future[Recorded]"]


class GroupCommitter:
    """A committer thread for one database, plus an enqueuer thread for mapping messages."""

    def __init__(
        self, factory: sessionmaker[Session], enqueue: Callable[[list[int]], None]
    ) -> None:
        self.factory = factory
        self.enqueue = enqueue
        self.work: queue.SimpleQueue[Work] = queue.SimpleQueue()
        self.to_enqueue: queue.SimpleQueue[list[int]] = queue.SimpleQueue()
        self.started = False
        self.lock = threading.Lock()

    def submit(self, deliveries: list[Delivery]) -> Future[Recorded]:
        """Queue one request's deliveries; the future resolves after their commit."""
        if not self.started:
            self.start()
        future: Future[Recorded] = Future()
        self.work.put((deliveries, future))
        return future

    def start(self) -> None:
        """Start both threads (daemon: a request in flight keeps the process busy anyway)."""
        with self.lock:
            if self.started:
                return
            threading.Thread(target=self.commit_loop, name="inbox-commit", daemon=True).start()
            threading.Thread(target=self.enqueue_loop, name="inbox-enqueue", daemon=True).start()
            self.started = True

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
            batch = [work for work in batch if work[1].set_running_or_notify_cancel()]
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
            for _, future in batch:
                future.set_exception(exc)
            return
        except Exception:  # noqa: BLE001 - isolate the request that fails
            if len(batch) == 1:
                batch[0][1].set_exception(RuntimeError("inbox insert failed"))
                log.exception("inbox insert failed")
                return
            for work in batch:
                self.commit([work])
            return
        pending: list[int] = []
        for (_, future), result in zip(batch, results, strict=True):
            future.set_result(result)
            pending += result.pending_ids
        if pending:
            self.to_enqueue.put(pending)

    def record(self, requests: list[list[Delivery]]) -> list[Recorded]:
        """record_batch in a fresh session."""
        session = self.factory()
        try:
            return record_batch(session, requests)
        finally:
            session.close()

    def enqueue_loop(self) -> None:
        """Forever: send mapping messages for committed rows (best effort)."""
        while True:
            ids = self.to_enqueue.get()
            try:
                self.enqueue(ids)
            except Exception:  # noqa: BLE001 - the rows are stored; the scheduler maps them
                log.warning("inbox enqueue failed", extra={"count": len(ids)})
