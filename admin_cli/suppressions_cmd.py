"""`mactl suppressions import --dnc FILE | list [--dnc]`: the do-not-advertise list.

The national do-not-advertise list (Decree 91 Art. 13) is loaded from a file: one phone
number per line, or a CSV file with a ``phone`` column. A re-import replaces the list.
"""

from __future__ import annotations

from pathlib import Path

import typer
from sqlalchemy import select

from admin_cli.output import JSON, MAX_ROWS, console, load_settings, print_json, print_table
from automation.core.db import session_scope
from automation.core.errors import InputError
from automation.core.models import Suppression
from automation.delivery import dnc

app = typer.Typer(
    name="suppressions", help="Suppressed addresses and the do-not-advertise (DNC) list."
)
DNC = typer.Option(False, "--dnc", help="The national do-not-advertise list of phone numbers.")


@app.command("import")
def import_cmd(
    file: Path = typer.Argument(..., help="One phone per line, or a CSV with a phone column."),  # noqa: B008
    dnc_list: bool = DNC,
    as_json: bool = JSON,
) -> None:
    """Replace the do-not-advertise list with the numbers in FILE (normalised to E.164)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress

    if not dnc_list:
        raise InputError(
            "only the do-not-advertise list is imported",
            where="suppressions import",
            fix="add --dnc",
        )
    if not file.is_file():
        raise InputError("no such file", where=str(file), fix="give the path of the DNC file")
    phones = dnc.read_file(file)  # every line checked before anything is stored
    settings = load_settings()
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        console=console(),
        transient=True,
        disable=as_json,
    ) as progress:
        task = progress.add_task(f"importing {file.name}", total=len(set(phones)))
        with session_scope(settings) as session:
            count = dnc.replace_list(session, phones, lambda n: progress.advance(task, n))
    if as_json:
        print_json({"dnc": count, "file": str(file)})
        return
    console().print(f"do-not-advertise list replaced: {count} number(s) from {file}")


@app.command("list")
def list_cmd(
    dnc_list: bool = DNC,
    limit: int = typer.Option(100, min=1, max=MAX_ROWS, help="At most this many rows."),
    as_json: bool = JSON,
) -> None:
    """List the suppressed addresses, or with --dnc the do-not-advertise numbers."""
    settings = load_settings()
    with session_scope(settings) as session:
        if dnc_list:
            phones = dnc.listed(session, limit)
        else:
            rows = [
                {"channel": s.channel, "address": s.address, "reason": s.reason, "scope": s.scope}
                for s in session.scalars(select(Suppression).order_by(Suppression.id).limit(limit))
            ]
    if dnc_list:
        if as_json:
            print_json(phones)
        else:
            print_table(f"do-not-advertise list ({len(phones)})", ["phone"], [[p] for p in phones])
        return
    if as_json:
        print_json(rows)
        return
    columns = ["channel", "address", "reason", "scope"]
    print_table(f"suppressions ({len(rows)})", columns, [[r[c] for c in columns] for r in rows])
