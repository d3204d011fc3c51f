"""Enrollments and outbox rows inserted many at a time, as one JSON document on PostgreSQL.

SQLAlchemy's multi-row INSERT names one placeholder per value, and psycopg converts every
placeholder of a statement in Python on each call: a batch's enrollments made 17 KB of
SQL per statement and its buffered outbox rows 200 KB. ``jsonb_to_recordset`` takes the
rows as one text parameter instead (automation.core.bulk). SQLite keeps the ORM's insert.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session, make_transient_to_detached

from automation.core.bulk import rows_json
from automation.core.db import is_postgres
from automation.core.models import Enrollment

#: The enrollment columns an INSERT writes (all but the id the database gives).
ENROLLMENT_COLUMNS = (
    "sequence_id", "version_id", "contact_id", "state", "cursor", "next_run_at",
    "waiting_for", "context", "trigger_event_id", "exit_reason", "entered_at", "finished_at",
)  # fmt: skip

_ENROLLMENTS_PG = text(
    """
    INSERT INTO enrollments (sequence_id, version_id, contact_id, state, cursor, next_run_at,
                             waiting_for, context, trigger_event_id, exit_reason, entered_at,
                             finished_at)
    SELECT r.sequence_id, r.version_id, r.contact_id, r.state, r.cursor, r.next_run_at,
           r.waiting_for, r.context, r.trigger_event_id, r.exit_reason, r.entered_at,
           r.finished_at
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        sequence_id bigint, version_id bigint, contact_id bigint, state text, cursor text,
        next_run_at timestamptz, waiting_for text, context jsonb, trigger_event_id bigint,
        exit_reason text, entered_at timestamptz, finished_at timestamptz)
    RETURNING id, sequence_id, contact_id
    """
)

MESSAGES_PG = text(
    """
    INSERT INTO messages (enrollment_id, step_key, contact_id, channel, purpose, template,
                          status, attempts, fallback, rendered, links, created_at, updated_at)
    SELECT r.enrollment_id, r.step_key, r.contact_id, r.channel, r.purpose, r.template,
           r.status, r.attempts, r.fallback, r.rendered, r.links, r.created_at, r.updated_at
    FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(
        enrollment_id bigint, step_key text, contact_id bigint, channel text, purpose text,
        template text, status text, attempts integer, fallback jsonb, rendered jsonb,
        links jsonb, created_at timestamptz, updated_at timestamptz)
    ON CONFLICT (enrollment_id, step_key) DO NOTHING
    RETURNING id
    """
)


def insert_enrollments(session: Session, created: list[Enrollment]) -> None:
    """Insert the new ``created`` enrollments (each (sequence, contact) distinct) and make
    them persistent in the session with their ids, as a flush would."""
    if not created:
        return
    pairs = {(e.sequence_id, e.contact_id) for e in created}
    if not is_postgres(session) or len(pairs) < len(created):  # ids are matched by pair
        session.add_all(created)
        session.flush()
        return
    rows: list[dict[str, Any]] = []
    for enrollment in created:
        for column in ENROLLMENT_COLUMNS:  # every attribute set: nothing left to load later
            if column not in enrollment.__dict__:
                setattr(enrollment, column, None)
        rows.append({column: getattr(enrollment, column) for column in ENROLLMENT_COLUMNS})
    ids = {
        (sequence_id, contact_id): id_
        for id_, sequence_id, contact_id in session.execute(
            _ENROLLMENTS_PG, {"rows": rows_json(rows)}
        )
    }
    for enrollment in created:
        enrollment.id = ids[(enrollment.sequence_id, enrollment.contact_id)]
        make_transient_to_detached(enrollment)
        session.add(enrollment)
