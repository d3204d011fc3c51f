"""`mactl enrollments list`: who is in which sequence, where, and why they left."""

from __future__ import annotations

from typing import Any

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin_cli.contact_ref import CONTACT_HELP, resolve_contact
from admin_cli.output import JSON, MAX_ROWS, load_settings, print_json, print_table
from automation.core.db import session_scope
from automation.core.errors import InputError, NotFound
from automation.core.models import Contact, Enrollment, Sequence, SequenceVersion

app = typer.Typer(name="enrollments", help="Enrollments: contacts running through sequences.")

STATES = ("active", "waiting", "done", "exited")


def list_enrollments(
    session: Session,
    sequence: str | None = None,
    state: str | None = None,
    contact: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Enrollments, newest first, filtered by sequence key, state and contact (id/email/phone)."""
    query = (
        select(Enrollment, Sequence.key, SequenceVersion.version, Contact)
        .join(Sequence, Sequence.id == Enrollment.sequence_id)
        .join(SequenceVersion, SequenceVersion.id == Enrollment.version_id)
        .join(Contact, Contact.id == Enrollment.contact_id)
        .order_by(Enrollment.id.desc())
        .limit(limit)
    )
    if sequence:
        if session.scalar(select(Sequence.id).where(Sequence.key == sequence)) is None:
            raise NotFound(
                f"unknown sequence {sequence!r}",
                where="--sequence",
                fix="see `mactl sequences list`",
            )
        query = query.where(Sequence.key == sequence)
    if state:
        if state not in STATES:
            raise InputError(
                f"{state!r} is not a state", where="--state", fix=f"use one of {', '.join(STATES)}"
            )
        query = query.where(Enrollment.state == state)
    if contact:
        query = query.where(Enrollment.contact_id == resolve_contact(session, contact).id)
    rows = []
    for enrollment, key, version, person in session.execute(query):
        rows.append(
            {
                "id": enrollment.id,
                "sequence": key,
                "version": version,
                "contact_id": person.id,
                "contact": person.email or person.phone,
                "state": enrollment.state,
                "cursor": enrollment.cursor,
                "next_run_at": enrollment.next_run_at,
                "waiting_for": enrollment.waiting_for,
                "exit_reason": enrollment.exit_reason,
                "entered_at": enrollment.entered_at,
                "finished_at": enrollment.finished_at,
            }
        )
    return rows


@app.command("list")
def list_cmd(
    sequence: str | None = typer.Option(None, "--sequence", help="Only this sequence key."),
    state: str | None = typer.Option(None, "--state", help="active | waiting | done | exited"),
    contact: str | None = typer.Option(None, "--contact", metavar="CONTACT", help=CONTACT_HELP),
    limit: int = typer.Option(50, "--limit", min=1, max=MAX_ROWS, help="At most this many rows."),
    as_json: bool = JSON,
) -> None:
    """List enrollments, newest first."""
    load_settings()
    with session_scope() as session:
        rows = list_enrollments(session, sequence, state, contact, limit)
    if as_json:
        print_json(rows)
        return
    print_table(
        "Enrollments",
        ["id", "sequence", "v", "contact", "state", "step", "next run", "exit", "entered"],
        [
            [
                r["id"],
                r["sequence"],
                r["version"],
                r["contact"],
                r["state"],
                r["cursor"],
                r["next_run_at"],
                r["exit_reason"],
                r["entered_at"],
            ]
            for r in rows
        ],
    )
