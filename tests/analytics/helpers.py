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
