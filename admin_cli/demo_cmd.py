"""`mactl demo`: a simulated month of a Vietnamese shop through the shipped playbooks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from admin_cli.output import JSON, console, print_json

app = typer.Typer()


def print_summary(summary: dict[str, Any]) -> None:
    """The demo's headline, then `mactl report` on the demo data (80 columns)."""
    from admin_cli.report_cmd import render_report

    out = console()
    out.print(
        f"Simulated {summary['days']} days from {summary['start']:%Y-%m-%d} "
        f"(seed {summary['seed']}): {summary['contacts']} contacts, {summary['orders']} orders, "
        f"{summary['carts_abandoned']} abandoned carts",
        markup=False,
    )
    render_report(summary["report"], out)
    out.print(
        f"outbox: {summary['outbox_file']}\ndatabase: {summary['database_url']}\n"
        f"took {summary['elapsed_seconds']} s\n"
        f"again, as HTML: DATABASE_URL={summary['database_url']} mactl report --html report.html",
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
