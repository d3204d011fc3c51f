"""The `mactl` root command: mounts every sub-command (one line per module)."""

from __future__ import annotations

import typer

from admin_cli import (
    apply_cmd,
    contacts_cmd,
    db_cmd,
    demo_cmd,
    dlq_cmd,
    doctor_cmd,
    enrollments_cmd,
    events_cmd,
    inbox_cmd,
    runtime_cmd,
    segments_cmd,
    sendtest_cmd,
    sequences_cmd,
    templates_cmd,
)

app = typer.Typer(
    name="mactl",
    help="Marketing automation admin: run the system, look at contacts and events, manage YAML.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

runtime_cmd.register(app)
app.add_typer(db_cmd.app, name="db")
app.add_typer(contacts_cmd.app, name="contacts")
app.add_typer(events_cmd.app, name="events")
apply_cmd.register(app)
app.add_typer(segments_cmd.app, name="segments")
app.add_typer(sequences_cmd.app, name="sequences")
app.add_typer(enrollments_cmd.app, name="enrollments")
demo_cmd.register(app)
app.add_typer(templates_cmd.app, name="templates")
app.add_typer(dlq_cmd.app, name="dlq")
app.add_typer(inbox_cmd.app, name="inbox")
doctor_cmd.register(app)
sendtest_cmd.register(app)


def main() -> None:
    """Entry point for `python -m admin_cli.main`."""
    app()


if __name__ == "__main__":
    main()
