"""`mactl events`: see what came in; dead events (failed) and processing them again (retry)."""

from __future__ import annotations

import typer
from sqlalchemy import ColumnElement, or_, select

from admin_cli.contact_ref import CONTACT_HELP, parse_id, resolve_contact
from admin_cli.contacts_cmd import event_summary
from admin_cli.output import JSON, MAX_ROWS, console, load_settings, print_json, print_table
from automation.core.errors import InputError
from automation.core.models import Event

app = typer.Typer(name="events", help="Stored canonical events (webhooks, internal events).")


@app.command("list")
def list_events(
    contact: str | None = typer.Option(
        None,
        "--contact",
        "-c",
        metavar="CONTACT",
        help=f"Only this contact's events. {CONTACT_HELP}",
    ),
    types: list[str] = typer.Option(  # noqa: B006
        [],
        "--type",
        "-t",
        metavar="TYPE",
        help="Event type, e.g. order.paid; `order.*` for a family (repeatable).",
    ),
    source: str | None = typer.Option(None, help="Only from this source (shopify, internal, ...)."),
    limit: int = typer.Option(50, min=1, max=MAX_ROWS, help="At most this many, newest first."),
    as_json: bool = JSON,
) -> None:
    """List recent events, newest first."""
    from automation.core.db import session_scope

    settings = load_settings()
    with session_scope(settings) as session:
        query = select(Event).order_by(Event.occurred_at.desc(), Event.id.desc()).limit(limit)
        if contact is not None:
            found = resolve_contact(session, contact)
            query = query.where(Event.contact_id == found.id)
        if types:
            exact = [t for t in types if not t.endswith("*")]
            prefixes = [t[:-1] for t in types if t.endswith("*")]
            conditions: list[ColumnElement[bool]] = [Event.type.in_(exact)] if exact else []
            conditions += [Event.type.startswith(p, autoescape=True) for p in prefixes]
            query = query.where(or_(*conditions))
        if source is not None:
            query = query.where(Event.source == source)
        events = [event_summary(e) for e in session.scalars(query)]
    if as_json:
        print_json(events)
        return
    print_table(
        f"Events ({len(events)})",
        ["id", "occurred", "type", "source", "contact", "processed"],
        [
            (
                e["id"],
                e["occurred_at"],
                e["type"],
                e["source"],
                e["contact_id"],
                "yes" if e["processed_at"] else "no",
            )
            for e in events
        ],
    )


@app.command("failed")
def failed_events(
    limit: int = typer.Option(100, min=1, max=MAX_ROWS, help="At most this many, newest first."),
    as_json: bool = JSON,
) -> None:
    """List dead events (processing failed EVENT_MAX_ATTEMPTS times) with the reason."""
    from automation.core.db import session_scope
    from automation.core.processing import dead_events

    settings = load_settings()
    with session_scope(settings) as session:
        rows = dead_events(session, limit)
    if as_json:
        print_json(rows)
        return
    print_table(
        f"Dead events ({len(rows)})",
        ["id", "type", "source", "contact", "attempts", "dead since", "reason"],
        [
            (r["id"], r["type"], r["source"], r["contact_id"], r["attempts"], r["dead_at"],
             r["reason"])
            for r in rows
        ],
    )


@app.command("retry")
def retry_events(
    refs: list[str] = typer.Argument(  # noqa: B008
        None, metavar="[ID]...", help="Dead event ids to process again."
    ),
    all_: bool = typer.Option(False, "--all", help="Retry every dead event."),
    as_json: bool = JSON,
) -> None:
    """Process dead events again (attempts reset; only the handlers that failed run)."""
    from automation.core.db import session_scope
    from automation.core.processing import retry_dead_events

    settings = load_settings()
    ids = [parse_id(ref, "ID", "event id") for ref in refs or []]
    if not ids and not all_:
        raise InputError(
            "no events named",
            where="events retry",
            fix="give dead event ids (see `mactl events failed`) or --all",
        )
    with session_scope(settings) as session:
        retried = retry_dead_events(session, None if all_ else ids)
    missing = sorted(set(ids) - set(retried))
    if as_json:
        print_json({"retried": retried, "not_dead": missing})
        return
    console().print(f"queued {len(retried)} event(s) again: {retried}")
    if missing:
        console().print(f"[yellow]not dead, skipped: {missing}[/yellow]")
