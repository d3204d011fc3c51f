"""Group commit of sent outcomes: one writer thread per database commits for every sender.

A send batch whose provider calls returned hands the sent rows (and their ``message.sent``
events) to ``submit`` instead of committing them itself. The writer thread takes
everything submitted while its previous commit ran, writes it with two statements per
submission in ONE transaction and commits, then wakes the submitters: eight sending
threads share one commit instead of eight. The at-most-once window stays the calls in
flight plus one commit: a worker killed before the commit leaves the rows ``sending``,
re-sent by automation.delivery.stale with the same idempotency key.

PostgreSQL only (SQLite serialises writers anyway; batches there commit inline).
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import Future
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from automation.delivery.outcome import BatchResult, store_sent

log = logging.getLogger(__name__)
Item = tuple[list[dict[str, Any]], list[dict[str, Any]], "Future[None]"]


class GroupWriter:
    """Commits submitted sent outcomes in groups (see the module docstring)."""

    def __init__(self, engine: Engine, start: bool = True) -> None:
        self.engine = engine
        self.commits = 0
        self._queue: queue.Queue[Item] = queue.Queue()
        if start:
            threading.Thread(target=self._run, name="outcome-writer", daemon=True).start()

    def submit(self, result: BatchResult) -> Future[None]:
        """Take the result's sent rows and events (cleared there); done once committed."""
        done: Future[None] = Future()
        self._queue.put((list(result.sent_rows), list(result.sent_events), done))
        result.sent_rows.clear()
        result.sent_events.clear()
        return done

    def write_available(self, block: bool = True) -> int:
        """Write every submission waiting now in one transaction; returns how many."""
        try:
            items = [self._queue.get(block=block)]
        except queue.Empty:
            return 0
        while True:
            try:
                items.append(self._queue.get_nowait())
            except queue.Empty:
                break
        try:
            self._write(items)
        except Exception:  # noqa: BLE001 - one bad submission must not fail the others
            log.exception("group commit failed; writing %d submissions one by one", len(items))
            for item in items:
                try:
                    self._write([item])
                except Exception as exc:  # noqa: BLE001 - the submitter re-raises it
                    item[2].set_exception(exc)
            return len(items)
        return len(items)

    def _write(self, items: list[Item]) -> None:
        with Session(self.engine) as session:
            holder = BatchResult()
            for rows, events, _ in items:
                holder.sent_rows[:], holder.sent_events[:] = rows, events
                store_sent(session, holder)
            session.commit()
        self.commits += 1
        for *_, done in items:
            if not done.done():
                done.set_result(None)

    def _run(self) -> None:
        while True:
            self.write_available()


_writers: dict[int, GroupWriter] = {}
_lock = threading.Lock()


def writer_for(engine: Engine) -> GroupWriter:
    """The process's writer for ``engine`` (started on first use)."""
    with _lock:
        writer = _writers.get(id(engine))
        if writer is None or writer.engine is not engine:
            writer = _writers[id(engine)] = GroupWriter(engine)
        return writer
