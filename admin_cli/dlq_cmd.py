"""`mactl dlq list | replay`: failed messages with their reasons, and sending them again."""

from __future__ import annotations

import typer

from admin_cli.contact_ref import parse_id
from admin_cli.output import JSON, MAX_ROWS, console, load_settings, print_json, print_table
from automation.core.db import session_scope
from automation.core.errors import InputError
from automation.delivery.deadletter import list_failed, redis_dead_counts, replay
from automation.privacy import audit

app = typer.Typer(name="dlq", help="Dead letters: messages that failed for good (list, replay).")


@app.command("list")
def list_cmd(
    limit: int = typer.Option(100, min=1, max=MAX_ROWS, help="At most this many rows."),
    as_json: bool = JSON,
) -> None:
    """List failed messages, newest first, with the reason."""
    settings = load_settings()
    with session_scope(settings) as session:
        rows = list_failed(session, limit)
    if as_json:
        print_json(rows)
        return
    print_table(
        f"failed messages ({len(rows)})",
        ["id", "channel", "template", "contact", "attempts", "updated", "reason"],
        [
            [
                r["id"],
                r["channel"],
                r["template"],
                r["contact_id"],
                r["attempts"],
                r["updated_at"],
                r["reason"],
            ]
            for r in rows
        ],
    )
    try:
        counts = redis_dead_counts(settings)
    except Exception as exc:  # noqa: BLE001 - informational only
        console().print(f"[yellow]Redis dead-letter queues not readable: {exc}[/yellow]")
        return
    if counts:
        console().print(
            "Dramatiq dead-letter queues: " + ", ".join(f"{q}={n}" for q, n in counts.items())
        )


@app.command("replay")
def replay_cmd(
    refs: list[str] = typer.Argument(  # noqa: B008
        None, metavar="[ID]...", help="Message ids to send again."
    ),
    all_: bool = typer.Option(False, "--all", help="Replay every failed message."),
    as_json: bool = JSON,
) -> None:
    """Re-queue failed messages (attempts reset) on their channel's queue.

    A message whose step already went out through a fallback channel is refused.
    """
    settings = load_settings()
    ids = [parse_id(ref, "ID", "message id") for ref in refs or []]
    if not ids and not all_:
        raise InputError(
            "no messages named",
            where="dlq replay",
            fix="give message ids (see `mactl dlq list`) or --all",
        )
    with session_scope(settings) as session:
        replayed, refused = replay(session, None if all_ else ids)
        audit.record(session, "dlq.replay", None, {"all": all_, "ids": ids, "replayed": replayed})
    missing = sorted(set(ids) - set(replayed) - set(refused))
    if as_json:
        print_json({"replayed": replayed, "not_failed": missing, "refused": refused})
        return
    console().print(f"replayed {len(replayed)} message(s): {replayed}")
    for message_id, reason in sorted(refused.items()):
        console().print(f"[yellow]refused {message_id}: {reason}[/yellow]", highlight=False)
    if missing:
        console().print(f"[yellow]not in failed state, skipped: {missing}[/yellow]")
