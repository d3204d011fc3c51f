"""Shared output helpers: the --json option, JSON, Rich tables, and the one error path.

The error path: every command runs inside ``ErrorsGroup.invoke`` (the root group of
`mactl`), so a user mistake raised anywhere, as ``automation.core.errors.DomainError``
(or a bad setting, a missing file, an unreachable or outdated database), is printed as
one red line ``error: <where>: <message>; <fix>`` on stderr with exit code 2. Any other
exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from automation.core.config import Settings, SettingsError, get_settings
from automation.core.errors import DomainError, NotFound

EXIT_USER_ERROR = 2
#: The one ``--json`` option; every command that can print JSON takes ``as_json: bool = JSON``.
JSON = typer.Option(False, "--json", help="Print JSON instead of tables.")
#: Upper bound of every --limit / --events option (keeps LIMIT inside BIGINT, output readable).
MAX_ROWS = 10_000


def console() -> Console:
    """A Rich console on the current stdout (resolved late so test runners capture it)."""
    return Console(file=sys.stdout, soft_wrap=False)


def print_error(message: str) -> None:
    """Print ``error: <message>`` as one red line on stderr."""
    Console(file=sys.stderr, highlight=False, soft_wrap=True).print(
        f"[red]error:[/red] {escape(message)}", markup=True
    )


def fail(message: str) -> NoReturn:
    """Print one red error line on stderr and exit with code 2."""
    print_error(message)
    raise typer.Exit(EXIT_USER_ERROR)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def json_text(data: Any) -> str:
    """Data as indented UTF-8 JSON text (datetimes as ISO-8601)."""
    return json.dumps(data, ensure_ascii=False, indent=2, default=_json_default)


def print_json(data: Any) -> None:
    """Print data as indented UTF-8 JSON (datetimes as ISO-8601) on stdout."""
    typer.echo(json_text(data))


def print_table(title: str | None, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Print a Rich table; None cells are shown as a dim dash; `title: none` when empty."""
    rows = list(rows)
    if not rows:
        console().print(f"{title or 'rows'}: none", highlight=False)
        return
    table = Table(title=title, show_lines=False, header_style="bold")
    for name in columns:
        table.add_column(name, overflow="fold")
    for row in rows:
        table.add_row(*("[dim]-[/dim]" if cell is None else _cell(cell) for cell in row))
    console().print(table)


def _cell(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value).replace("[", r"\[")


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn user mistakes (DomainError, settings, files, database state) into one line + exit 2."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        yield
    except SettingsError as exc:
        fail(str(exc.code))
    except (DomainError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        fail(_one_line(exc))
    except (OperationalError, ProgrammingError) as exc:
        reason = _one_line(exc.orig or exc)
        if "no such" in reason or "does not exist" in reason:
            fail(f"database: {reason}; the schema is behind: run `mactl db upgrade`")
        if isinstance(exc, ProgrammingError):
            raise
        fail(f"database: {reason}; check DATABASE_URL and that the database is up")


class ErrorsGroup(TyperGroup):
    """The root command group: runs every sub-command inside ``user_errors``."""

    def invoke(self, ctx: Any) -> Any:  # a typer Context (typer vendors its own click)
        """Invoke the chosen sub-command; a user mistake becomes one line and exit 2."""
        with user_errors():
            return super().invoke(ctx)


def load_settings() -> Settings:
    """The settings, or one line naming the bad environment variable and exit 2."""
    with user_errors():
        return get_settings()
    raise AssertionError("unreachable")  # pragma: no cover


def get_by_key(session: Any, model: Any, key: str, what: str) -> Any:
    """The ``model`` row whose ``key`` column is ``key``; NotFound naming the applied keys."""
    from sqlalchemy import select

    row = session.scalar(select(model).where(model.key == key))
    if row is None:
        known = ", ".join(session.scalars(select(model.key).order_by(model.key))) or "none"
        raise NotFound(
            f"unknown {what} {key!r}",
            where=what,
            fix=f"applied: {known}; write it with `mactl apply`",
        )
    return row
