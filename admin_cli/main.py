"""The `mactl` root command: every module's ``app`` is mounted the same way.

A module with a named Typer (``typer.Typer(name="db")``) becomes a command group
(`mactl db ...`); an unnamed one contributes top-level commands (`mactl apply`).
Every command runs inside ``ErrorsGroup``: one error path for the whole CLI.
"""

from __future__ import annotations

import typer

from admin_cli import (
    apply_cmd,
    audit_cmd,
    contacts_cmd,
    db_cmd,
    demo_cmd,
    dlq_cmd,
    doctor_cmd,
    enrollments_cmd,
    events_cmd,
    inbox_cmd,
    privacy_cmd,
    report_cmd,
    runtime_cmd,
    segments_cmd,
    sendtest_cmd,
    sequences_cmd,
    suppressions_cmd,
    templates_cmd,
)
from admin_cli.output import ErrorsGroup
from automation.runtime import wiring

# Every mactl process: the event handler table and the outbox sinks (rows a command
# commits reach the queues). Installing reads no settings and loads no broker.
wiring.install()

app = typer.Typer(
    name="mactl",
    cls=ErrorsGroup,
    help="Marketing automation admin: run the system, look at contacts and events, manage YAML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

for module in (
    runtime_cmd,
    db_cmd,
    contacts_cmd,
    events_cmd,
    apply_cmd,
    segments_cmd,
    sequences_cmd,
    enrollments_cmd,
    demo_cmd,
    templates_cmd,
    dlq_cmd,
    suppressions_cmd,
    doctor_cmd,
    sendtest_cmd,
    report_cmd,
    inbox_cmd,
    audit_cmd,
):
    app.add_typer(module.app)

# privacy_cmd adds `contacts export` and `contacts forget` to the contacts group.
assert privacy_cmd.app is contacts_cmd.app


def main() -> None:
    """Entry point for `python -m admin_cli.main`."""
    app()


if __name__ == "__main__":
    main()
