"""`mactl audit list`: who ran apply, export, forget and DLQ replays, and when."""

from __future__ import annotations

import typer

from admin_cli.output import JSON, MAX_ROWS, load_settings, print_json, print_table
from automation.core.db import session_scope
from automation.privacy.audit import entries

app = typer.Typer(name="audit", help="The audit log: apply, export, forget, DLQ replay.")


@app.command("list")
def list_cmd(
    limit: int = typer.Option(100, min=1, max=MAX_ROWS, help="At most this many entries."),
    action: str | None = typer.Option(
        None, help="Only this action (apply, export, forget, dlq.replay)."
    ),
    as_json: bool = JSON,
) -> None:
    """List audit entries, newest first: when, who, what, on which target, with arguments."""
    settings = load_settings()
    with session_scope(settings) as session:
        rows = entries(session, limit, action)
    if as_json:
        print_json(rows)
        return
    print_table(
        f"audit log ({len(rows)})",
        ["at", "actor", "action", "target", "details"],
        [(r["at"], r["actor"], r["action"], r["target"], r["details"]) for r in rows],
    )
