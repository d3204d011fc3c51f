"""`mactl db`: migrate the schema and show where it stands."""

from __future__ import annotations

import typer

from admin_cli.output import JSON, load_settings, print_json

app = typer.Typer(
    name="db", help="Database schema: upgrade to the latest migration, show the current one."
)


@app.command("upgrade")
def upgrade(
    revision: str = typer.Argument("head", help="Target migration (default: the latest)."),
) -> None:
    """Create or migrate the tables in DATABASE_URL (safe to run again)."""
    from automation.core.migrate import upgrade as run_upgrade

    settings = load_settings()
    run_upgrade(settings.database_url, revision)
    typer.echo(f"database at {current_revision(settings.database_url) or 'base'}")


@app.command("current")
def current(as_json: bool = JSON) -> None:
    """Show the migration the database is at and the latest one shipped."""
    settings = load_settings()
    at = current_revision(settings.database_url)
    head = head_revision()
    if as_json:
        print_json({"current": at, "head": head, "up_to_date": at == head})
        return
    state = "up to date" if at == head else "run `mactl db upgrade`"
    typer.echo(f"current: {at or 'none (empty database)'}  head: {head}  ({state})")


def current_revision(database_url: str) -> str | None:
    """The revision stamped in the database, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine, pool

    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    """The newest migration shipped with the code."""
    from alembic.script import ScriptDirectory

    from automation.core.migrate import alembic_config

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
