"""`mactl sequences`: list, show, pause and resume the sequences applied to the database."""

from __future__ import annotations

from typing import Any, Literal

import typer
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin_cli.output import JSON, console, get_by_key, load_settings, print_json, print_table
from automation.core.db import session_scope
from automation.core.models import Enrollment, Message, Sequence, SequenceVersion
from automation.core.vocabulary import MARKETING

app = typer.Typer(
    name="sequences", help="Sequences: list, show, pause or resume (write them with `mactl apply`)."
)


def _get(session: Session, key: str) -> Sequence:
    """The sequence with ``key``; NotFound naming the applied keys otherwise."""
    row: Sequence = get_by_key(session, Sequence, key, "sequence")
    return row


def _definition(session: Session, sequence: Sequence) -> tuple[int | None, dict[str, Any]]:
    if sequence.current_version_id is None:
        return None, {}
    version = session.get(SequenceVersion, sequence.current_version_id)
    if version is None:
        return None, {}
    return version.version, dict(version.definition or {})


def _trigger_text(definition: dict[str, Any]) -> str:
    trigger = definition.get("trigger") or {}
    if isinstance(trigger, dict):
        if "event" in trigger:
            return f"event {trigger['event']}"
        if "segment" in trigger:
            return f"segment {trigger['segment']}"
    return str(trigger) if trigger else "-"


def enrollment_counts(session: Session, sequence_id: int) -> dict[str, int]:
    """Enrollments of one sequence by state (active, waiting, done, exited)."""
    rows = session.execute(
        select(Enrollment.state, func.count())
        .where(Enrollment.sequence_id == sequence_id)
        .group_by(Enrollment.state)
    ).all()
    return {str(state): int(count) for state, count in rows}


def list_sequences(session: Session) -> list[dict[str, Any]]:
    """Every applied sequence with its version, trigger and enrollment counts."""
    result = []
    for sequence in session.scalars(select(Sequence).order_by(Sequence.key)):
        version, definition = _definition(session, sequence)
        counts = enrollment_counts(session, sequence.id)
        result.append(
            {
                "key": sequence.key,
                "status": sequence.status,
                "version": version,
                "purpose": definition.get("purpose", MARKETING),
                "trigger": _trigger_text(definition),
                "enrollments": counts,
                "running": counts.get("active", 0) + counts.get("waiting", 0),
                "total": sum(counts.values()),
            }
        )
    return result


def show_sequence(session: Session, key: str) -> dict[str, Any]:
    """One sequence: status, versions, the current definition, enrollments and messages."""
    sequence = _get(session, key)
    version, definition = _definition(session, sequence)
    versions = session.execute(
        select(SequenceVersion.version, SequenceVersion.created_at, SequenceVersion.definition_hash)
        .where(SequenceVersion.sequence_id == sequence.id)
        .order_by(SequenceVersion.version)
    ).all()
    messages = session.execute(
        select(Message.channel, Message.status, func.count())
        .join(Enrollment, Enrollment.id == Message.enrollment_id)
        .where(Enrollment.sequence_id == sequence.id)
        .group_by(Message.channel, Message.status)
    ).all()
    exits = session.execute(
        select(Enrollment.exit_reason, func.count())
        .where(Enrollment.sequence_id == sequence.id, Enrollment.exit_reason.is_not(None))
        .group_by(Enrollment.exit_reason)
    ).all()
    return {
        "key": sequence.key,
        "status": sequence.status,
        "version": version,
        "versions": [
            {"version": v, "created_at": created, "hash": digest[:12]}
            for v, created, digest in versions
        ],
        "definition": definition,
        "enrollments": enrollment_counts(session, sequence.id),
        "exits": {str(reason): int(n) for reason, n in exits},
        "messages": [
            {"channel": channel, "status": status, "count": int(n)}
            for channel, status, n in messages
        ],
    }


def set_status(session: Session, key: str, status: Literal["active", "paused"]) -> Sequence:
    """Pause or resume a sequence (paused: no new enrollments, running ones hold their place)."""
    from automation.sequences.store import set_status as store_set_status

    _get(session, key)  # a clear error naming the applied keys
    return store_set_status(session, key, status)


@app.command("list")
def list_cmd(as_json: bool = JSON) -> None:
    """List applied sequences with version, trigger and enrollment counts."""
    load_settings()
    with session_scope() as session:
        rows = list_sequences(session)
    if as_json:
        print_json(rows)
        return
    print_table(
        "Sequences",
        ["key", "status", "version", "purpose", "trigger", "running", "done", "exited"],
        [
            [
                r["key"],
                r["status"],
                r["version"],
                r["purpose"],
                r["trigger"],
                r["running"],
                r["enrollments"].get("done", 0),
                r["enrollments"].get("exited", 0),
            ]
            for r in rows
        ],
    )


@app.command("show")
def show_cmd(
    key: str = typer.Argument(..., help="Sequence key, e.g. cart_recovery."),
    as_json: bool = JSON,
) -> None:
    """Show one sequence: versions, steps of the current version, enrollments, messages."""
    load_settings()
    with session_scope() as session:
        data = show_sequence(session, key)
    if as_json:
        print_json(data)
        return
    import yaml

    out = console()
    out.print(f"[bold]{data['key']}[/bold]  status={data['status']}  version={data['version']}")
    out.print(yaml.safe_dump(data["definition"], allow_unicode=True, sort_keys=False), markup=False)
    print_table(
        "Versions",
        ["version", "created", "hash"],
        [[v["version"], v["created_at"], v["hash"]] for v in data["versions"]],
    )
    print_table("Enrollments", ["state", "count"], sorted(data["enrollments"].items()))
    if data["exits"]:
        print_table("Exits", ["reason", "count"], sorted(data["exits"].items()))
    if data["messages"]:
        print_table(
            "Messages",
            ["channel", "status", "count"],
            [[m["channel"], m["status"], m["count"]] for m in data["messages"]],
        )


def _set(key: str, status: Literal["active", "paused"], as_json: bool) -> None:
    load_settings()
    with session_scope() as session:
        sequence = set_status(session, key, status)
        result = {"key": sequence.key, "status": sequence.status}
    if as_json:
        print_json(result)
    else:
        typer.echo(f"{result['key']}: {result['status']}")


@app.command("pause")
def pause_cmd(key: str = typer.Argument(..., help="Sequence key."), as_json: bool = JSON) -> None:
    """Pause a sequence: no new enrollments, running ones stop advancing until resumed."""
    _set(key, "paused", as_json)


@app.command("resume")
def resume_cmd(key: str = typer.Argument(..., help="Sequence key."), as_json: bool = JSON) -> None:
    """Resume a paused sequence."""
    _set(key, "active", as_json)
