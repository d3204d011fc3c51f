"""The periodic pass: everything the database says is due, done from database state.

``run_pass(session_factory, now)`` runs the tasks of automation.runtime.tasks.TASKS in
order, each in its own session and transaction(s), and returns {name: count}. It is safe
to run in several processes at once: work is claimed with ``FOR UPDATE SKIP LOCKED`` on
PostgreSQL; on SQLite writers are serialised and every claim is re-checked
(automation.core.claims). Outbox rows a task creates reach the send queues when its
transaction commits (automation.core.outbox).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime

from sqlalchemy.orm import Session

from automation.core import clock
from automation.runtime.tasks import TASKS, Task

log = logging.getLogger(__name__)


def run_pass(
    session_factory: Callable[[], Session],
    now: datetime | None = None,
    tasks: Iterable[Task] = TASKS,
) -> dict[str, int]:
    """Run every task once as of ``now``; {task: count}, -1 for a failed task."""
    when = clock.ensure_utc(now) if now is not None else clock.now()
    results: dict[str, int] = {}
    for task in tasks:
        session = session_factory()
        try:
            results[task.name] = int(task.fn(session, when))
            session.commit()
        except Exception:  # noqa: BLE001 - one broken task must not stop the others
            session.rollback()
            log.exception("scheduler task %s failed", task.name)
            results[task.name] = -1
        finally:
            session.close()
    return results
