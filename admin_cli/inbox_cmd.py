"""`mactl inbox list | show | replay`: raw webhook deliveries, the quarantine, re-mapping."""

from __future__ import annotations

from typing import Any

import typer

from admin_cli.contact_ref import parse_id
from admin_cli.output import JSON, console, load_settings, print_json, print_table
from automation.core.db import session_scope
from automation.core.errors import InputError, NotFound
from automation.core.models_inbox import InboxDelivery
from automation.inbox import STATUSES
from automation.inbox.worker import listing, replay

app = typer.Typer(
    name="inbox", help="Webhook inbox: raw deliveries, quarantined ones, replay after a fix."
)


def summary(row: InboxDelivery) -> dict[str, Any]:
    """One delivery without its body."""
    return {
        "id": row.id,
        "source": row.source,
        "topic": row.topic,
        "status": row.status,
        "attempts": row.attempts,
        "received_at": row.received_at,
        "mapped_at": row.mapped_at,
        "dedupe_key": row.dedupe_key,
        "reason": row.reason,
    }


@app.command("list")
def list_cmd(
    status: str | None = typer.Option(
        None, "--status", help="pending, mapped, quarantined or ignored."
    ),
    source: str | None = typer.Option(None, "--source", help="shopify, haravan, sapo, ..."),
    limit: int = typer.Option(100, min=1, help="At most this many rows."),
    as_json: bool = JSON,
) -> None:
    """List deliveries, newest first, with the quarantine reason."""
    settings = load_settings()
    if status is not None and status not in STATUSES:
        raise InputError(
            f"{status!r} is not a status", where="--status", fix=f"use one of {', '.join(STATUSES)}"
        )
    with session_scope(settings) as session:
        rows = [summary(row) for row in listing(session, status, source, limit)]
    if as_json:
        print_json(rows)
        return
    columns = ["id", "source", "topic", "status", "attempts", "received_at", "reason"]
    print_table(f"inbox ({len(rows)})", columns, [[r[c] for c in columns] for r in rows])


@app.command("show")
def show_cmd(
    ref: str = typer.Argument(..., metavar="ID", help="Inbox id (see `mactl inbox list`)."),
    as_json: bool = JSON,
) -> None:
    """One delivery: its status, reason, kept headers and raw body."""
    settings = load_settings()
    inbox_id = parse_id(ref, "ID", "inbox id")
    with session_scope(settings) as session:
        row = session.get(InboxDelivery, inbox_id)
        if row is None:
            raise NotFound(
                f"no inbox delivery {inbox_id}", where="ID", fix="see `mactl inbox list`"
            )
        data = {
            **summary(row),
            "headers": row.headers,
            "body": row.body.decode("utf-8", errors="replace"),
        }
    if as_json:
        print_json(data)
        return
    for key, value in data.items():
        console().print(f"{key}: {value}", highlight=False, markup=False)


@app.command("replay")
def replay_cmd(
    refs: list[str] = typer.Argument(  # noqa: B008
        None, metavar="[ID]...", help="Inbox ids to map again."
    ),
    all_quarantined: bool = typer.Option(
        False, "--all-quarantined", help="Replay every quarantined delivery."
    ),
    as_json: bool = JSON,
) -> None:
    """Map deliveries again after a fix and process their new events (idempotent)."""
    from automation.core.processing import process_event

    settings = load_settings()
    ids = [parse_id(ref, "ID", "inbox id") for ref in refs or []]
    if not ids and not all_quarantined:
        raise InputError(
            "nothing to replay",
            where="mactl inbox replay",
            fix="give inbox ids (see `mactl inbox list`) or --all-quarantined",
        )
    with session_scope(settings) as session:
        result = replay(session, None if all_quarantined else ids)
        for event_id in result.event_ids:
            process_event(session, event_id)
            session.commit()
    data = {
        "mapped": result.mapped,
        "quarantined": result.quarantined,
        "ignored": result.ignored,
        "skipped": result.skipped,
        "new_events": len(result.event_ids),
    }
    if as_json:
        print_json(data)
        return
    console().print(
        f"mapped {len(result.mapped)}, still quarantined {len(result.quarantined)}, "
        f"ignored {len(result.ignored)}, new events {len(result.event_ids)}",
        highlight=False,
    )
    if result.skipped:
        console().print(f"[yellow]not pending or quarantined, skipped: {result.skipped}[/yellow]")
