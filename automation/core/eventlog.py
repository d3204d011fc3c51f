"""record_event: store an event once per (source, source_event_id), for internal producers."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from automation.core.clock import now
from automation.core.db import dialect_insert
from automation.core.models import Event

_RECORDED = "eventlog.recorded"  # session.info: how many events this session offered to store


def recorded_events(session: Session) -> int:
    """How many events record_event / record_events have offered in this session so far
    (a counter: a change tells process_event that follow-up events may exist)."""
    count: int = session.info.get(_RECORDED, 0)
    return count


def _count(session: Session, offered: int) -> None:
    session.info[_RECORDED] = recorded_events(session) + offered


def record_event(
    session: Session,
    type: str,
    contact_id: int | None,
    properties: dict[str, Any],
    source_event_id: str,
    occurred_at: datetime | None = None,
    source: str = "internal",
) -> Event | None:
    """Insert an event with payload {"properties": ...}; None if (source, id) is already stored.

    Uses INSERT ... ON CONFLICT DO NOTHING (PostgreSQL and SQLite), so a duplicate neither
    raises nor aborts the caller's transaction. The event is flushed, not committed.
    """
    when = occurred_at or now()
    values: dict[str, Any] = {
        "source": source,
        "source_event_id": source_event_id,
        "type": type,
        "contact_id": contact_id,
        "occurred_at": when,
        "received_at": now(),
        "payload": {"properties": properties},
    }
    stmt = (
        dialect_insert(session)(Event)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["source", "source_event_id"])
    )
    session.flush()
    _count(session, 1)
    # the new row itself comes back (no second statement to load it); nothing on a duplicate
    event: Event | None = session.scalars(
        stmt.returning(Event), execution_options={"populate_existing": True}
    ).one_or_none()
    return event


def record_events(session: Session, rows: list[dict[str, Any]]) -> int:
    """Bulk record_event: rows of {type, contact_id, properties, source_event_id, occurred_at,
    source?}; duplicates are skipped. Returns how many rows were offered (not inserted)."""
    stamp = now()
    values = [
        {
            "source": row.get("source", "internal"),
            "source_event_id": row["source_event_id"],
            "type": row["type"],
            "contact_id": row["contact_id"],
            "occurred_at": row.get("occurred_at") or stamp,
            "received_at": stamp,
            "payload": {"properties": row["properties"]},
        }
        for row in rows
    ]
    if not values:
        return 0
    session.flush()
    _count(session, len(values))
    stmt = dialect_insert(session)(Event).on_conflict_do_nothing(
        index_elements=["source", "source_event_id"]
    )
    for start in range(0, len(values), 500):  # executemany: one cached statement
        session.execute(stmt, values[start : start + 500])
    return len(values)
