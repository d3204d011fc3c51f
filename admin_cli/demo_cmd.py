"""`mactl demo`: a simulated month of a Vietnamese shop through the shipped playbooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from admin_cli.output import JSON, console, print_json, print_table
from automation.core.vocabulary import PENDING_STATUSES, Status

#: Statuses of messages that never left (the others went out, whatever happened next).
NOT_SENT = frozenset({Status.FAILED, Status.SKIPPED, *PENDING_STATUSES})

app = typer.Typer()


def print_summary(summary: dict[str, Any]) -> None:
    """The demo summary as Rich tables."""
    out = console()
    out.print(
        f"Simulated {summary['days']} days from {summary['start']:%Y-%m-%d} "
        f"(seed {summary['seed']}): {summary['contacts']} contacts, {summary['orders']} orders, "
        f"{summary['carts_abandoned']} abandoned carts",
        markup=False,
    )
    channels = sorted(summary["channels"])
    rows = []
    for key, data in summary["sequences"].items():
        per_channel = [
            sum(n for status, n in data["messages"].get(ch, {}).items()
                if status not in NOT_SENT)
            for ch in channels
        ]  # fmt: skip
        exits = ", ".join(f"{reason} {n}" for reason, n in data["exits"].items()) or None
        rows.append(
            [key, data["enrolled"], data["running"], data["done"], exits, data["conversions"],
             *per_channel]
        )  # fmt: skip
    print_table(
        "What each sequence did",
        ["sequence", "enrolled", "running", "done", "exits", "conversions",
         *(f"sent {ch}" for ch in channels)],
        rows,
    )  # fmt: skip
    statuses = sorted({s for by in summary["channels"].values() for s in by})
    print_table(
        "Messages by channel and status",
        ["channel", *statuses],
        [[ch, *(summary["channels"][ch].get(s, 0) for s in statuses)] for ch in channels],
    )
    out.print(
        f"outbox: {summary['outbox_file']}\ndatabase: {summary['database_url']}\n"
        f"took {summary['elapsed_seconds']} s",
        markup=False,
    )


@app.command("demo")
def demo_command(
    contacts: int = typer.Option(500, "--contacts", min=10, max=20000, help="How many people."),
    days: int = typer.Option(30, "--days", min=1, max=120, help="Days of shop activity."),
    seed: int = typer.Option(42, "--seed", help="Random seed (same seed, same story)."),
    database_url: str | None = typer.Option(
        None, "--database-url", help="Use this database instead of a temporary SQLite file."
    ),
    outbox: Path | None = typer.Option(  # noqa: B008
        None, "--outbox", help="Write sent messages here (default: next to the temp database)."
    ),
    as_json: bool = JSON,
) -> None:
    """Apply the playbooks to a simulated month of a Vietnamese shop and show what happened."""
    import logging

    from demo.simulate import DemoOptions, run_demo

    logging.getLogger().setLevel(logging.ERROR)
    options = DemoOptions(
        contacts=contacts,
        days=days,
        seed=seed,
        database_url=database_url,
        outbox_file=str(outbox) if outbox else None,
    )
    progress = None if as_json else (lambda line: console().print(line, markup=False))
    summary = run_demo(options, progress)
    if as_json:
        print_json(summary)
    else:
        print_summary(summary)
