"""Helpers for analytics tests: run `mactl report` in-process and read its JSON."""

from __future__ import annotations

import json
from typing import Any

from typer.testing import CliRunner

from admin_cli.main import app

runner = CliRunner()


def report_json(*args: str) -> dict[str, Any]:
    """`mactl report --json [args]` parsed; fails the test on a non-zero exit."""
    result = runner.invoke(app, ["report", "--json", *args])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def sequence(report: dict[str, Any], key: str) -> dict[str, Any]:
    """The report's entry for one sequence."""
    found = [s for s in report["sequences"] if s["key"] == key]
    assert found, f"{key} not in {[s['key'] for s in report['sequences']]}"
    return found[0]


def feed(session: Any, rows: list[tuple[str, int, dict[str, Any]]]) -> None:
    """Record and process (type, contact id, properties) events in one transaction."""
    from automation.core.eventlog import record_event
    from automation.core.processing import process_event

    for type_, contact_id, properties in rows:
        global _fed
        _fed += 1
        event = record_event(session, type_, contact_id, properties, f"analytics:{_fed}")
        assert event is not None
        process_event(session, event.id)
    session.commit()


def new_contacts(session: Any, count: int) -> list[int]:
    """``count`` committed contacts with an email address, in id order."""
    from automation.core.models import Contact

    global _fed
    rows = []
    for _ in range(count):
        _fed += 1
        rows.append(Contact(email=f"p{_fed}@example.vn", first_name="Lan"))
    session.add_all(rows)
    session.commit()
    return [row.id for row in rows]


_fed = 0
