"""`mactl events`: see what came in."""

from __future__ import annotations

import typer
from sqlalchemy import ColumnElement, or_, select

from admin_cli.contact_ref import CONTACT_HELP, resolve_contact
from admin_cli.contacts_cmd import event_summary
from admin_cli.output import JSON, MAX_ROWS, load_settings, print_json, print_table
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
