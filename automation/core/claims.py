"""Claim due rows in batches and work each one in isolation (the scheduler tasks' loop).

``work_through(session, query, Model, work)`` claims up to BATCH ids at a time (FOR UPDATE
SKIP LOCKED on PostgreSQL, so a racing pass skips them), runs ``work(id)`` per id and
commits; an item that raises is logged, left for the next pass and not claimed again
in this one. On SQLite writers are serialised and every claim is re-checked by ``work``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Select
from sqlalchemy.orm import Session

from automation.core.db import is_postgres

log = logging.getLogger(__name__)

BATCH = 200
MAX_BATCHES = 100


def claim(session: Session, query: Select[Any], of: Any) -> list[int]:
    """Ids from ``query``; on PostgreSQL locked FOR UPDATE SKIP LOCKED (another pass skips)."""
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True, of=of)
    return list(session.scalars(query))


def each(session: Session, ids: Iterable[int], work: Callable[[int], Any], failed: set[int]) -> int:
    """Run ``work(id)`` per id, isolating failures; commits; counts results not None/False.

    PostgreSQL: one savepoint per item and one commit per batch (claims stay locked).
    SQLite: one transaction per item (its driver's savepoints are not reliable).
    """
    done = 0
    postgres = is_postgres(session)
    for item in ids:
        try:
            if postgres:
                with session.begin_nested():
                    result = work(item)
            else:
                result = work(item)
                session.commit()
            done += 0 if result is None or result is False else 1
        except Exception:  # noqa: BLE001 - retried at the next pass
            if not postgres:
                session.rollback()
            failed.add(item)
            log.exception("scheduler item %s failed", item)
    session.commit()
    return done


def work_through(
    session: Session, query: Select[Any], of: Any, work: Callable[[int], Any]
) -> int:
    """Claim batches of ``query`` (ids of model ``of``) and ``each`` them until none is left."""
    return work_in_batches(session, query, of, lambda ids, failed: each(session, ids, work, failed))


def work_in_batches(
    session: Session, query: Select[Any], of: Any, work: Callable[[list[int], set[int]], int]
) -> int:
    """Claim batches of ``query`` and hand each to ``work(ids, failed)`` until none is left;
    ``work`` adds the ids to leave for the next pass to ``failed`` and returns a count."""
    total = 0
    failed: set[int] = set()
    for _ in range(MAX_BATCHES):
        batch = query.where(of.id.not_in(failed)) if failed else query
        ids = claim(session, batch.limit(BATCH), of)
        if not ids:
            break
        total += work(ids, failed)
    return total
