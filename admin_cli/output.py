"""Shared output helpers: JSON, Rich tables, and one red line + exit 2 for user errors."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from automation.core.config import Settings, SettingsError, get_settings

EXIT_USER_ERROR = 2


class UserError(Exception):
    """A mistake the operator can fix; shown as one line, never as a traceback."""


def console() -> Console:
    """A Rich console on the current stdout (resolved late so test runners capture it)."""
    return Console(file=sys.stdout, soft_wrap=False)


def fail(message: str) -> NoReturn:
    """Print one red line on stderr and exit with code 2."""
    Console(file=sys.stderr, highlight=False, soft_wrap=True).print(
        f"[red]error:[/red] {message}", markup=True
    )
    raise typer.Exit(EXIT_USER_ERROR)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return list(value)
    return str(value)


def print_json(data: Any) -> None:
    """Print data as indented UTF-8 JSON (datetimes as ISO-8601) on stdout."""
    typer.echo(json.dumps(data, ensure_ascii=False, indent=2, default=_json_default))


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
    """Turn known user errors (settings, bad input, unreachable database) into one line + exit 2."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        yield
    except SettingsError as exc:
        fail(str(exc.code))
    except (UserError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        fail(_one_line(exc))
    except (OperationalError, ProgrammingError) as exc:
        reason = _one_line(exc.orig or exc)
        if "no such" in reason or "does not exist" in reason:
            fail(f"database error: {reason} (the schema is behind: run `mactl db upgrade`)")
        if isinstance(exc, ProgrammingError):
            raise
        fail(f"database error: {reason} (check DATABASE_URL and that the database is up)")


def load_settings() -> Settings:
    """The settings, or one line naming the bad environment variable and exit 2."""
    with user_errors():
        return get_settings()
    raise AssertionError("unreachable")  # pragma: no cover


def get_by_key(session: Any, model: Any, key: str, what: str) -> Any:
    """The ``model`` row whose ``key`` column is ``key``; UserError naming the applied keys."""
    from sqlalchemy import select

    row = session.scalar(select(model).where(model.key == key))
    if row is None:
        known = ", ".join(session.scalars(select(model.key).order_by(model.key))) or "none"
        raise UserError(f"unknown {what} {key!r} (applied: {known}; see `mactl apply`)")
    return row
