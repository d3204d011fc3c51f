"""One error path: a user mistake is one red line `error: where: message; fix`, exit 2.

Also the one contact resolver: `0...`/`+...` is a phone, a bare positive integer an id,
`id:`/`phone:`/`email:` force the kind (both backends).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from admin_cli.main import app
from automation.core.models import Contact

runner = CliRunner()
HUGE = "99999999999999999999"  # beyond BIGINT


def one_error_line(args: list[str]) -> str:
    """Run mactl; assert exit 2, no traceback and exactly one `error:` line; return it."""
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), repr(result.exception)
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def add_contact(session: Session, **fields: object) -> Contact:
    contact = Contact(attributes={}, tags=[], last_inbound_at={}, **fields)
    session.add(contact)
    session.commit()
    return contact


@pytest.mark.parametrize(
    ("ref", "words"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("²", "not a contact id"),
        ("١٢", "not a contact id"),
        (HUGE, "too large"),
        ("9" * 5000, "too large"),  # more digits than int() parses
        ("id:00", "not a contact id"),
        ("0", "'0' is not a phone number"),
        ("id:", "not a contact id"),
        ("id:abc", "not a contact id"),
        ("phone:xyz", "not a phone number"),
        ("email:lan", "not an e-mail address"),
        ("xyz", "not a contact id"),
    ],
)
def test_contacts_show_bad_reference_is_one_line(session: Session, ref: str, words: str) -> None:
    add_contact(session, email="lan@example.vn")  # no phone: `phone IS NULL` must not match
    line = one_error_line(["contacts", "show", ref])
    assert line.startswith("error: CONTACT: ") and words in line, line
    assert "; " in line  # the fix is told


def test_resolver_rule_phone_id_and_prefixes(session: Session) -> None:
    lan = add_contact(session, email="lan@example.vn", phone="+84912345678")
    # 8 digits starting with 0 is a phone number (not an id), so it matches nobody here.
    line = one_error_line(["contacts", "show", "09123456"])
    assert "phone" in line or "no contact" in line
    for ref in (str(lan.id), f"id:{lan.id}", "0912 345 678", "+84912345678",
                "phone:0912345678", "email:LAN@example.vn", "lan@example.vn"):  # fmt: skip
        result = runner.invoke(app, ["contacts", "show", ref, "--json"])
        assert result.exit_code == 0, (ref, result.output)
        assert json.loads(result.stdout)["contact"]["id"] == lan.id
    missing = one_error_line(["contacts", "show", str(lan.id + 1000)])
    assert f"no contact with id {lan.id + 1000}" in missing
    helptext = runner.invoke(app, ["contacts", "show", "--help"]).stdout
    assert "id:" in helptext and "phone" in helptext


def test_ids_beyond_bigint_are_one_line(session: Session) -> None:
    render = one_error_line(["templates", "render", "order_status/shipped", "--contact", HUGE])
    assert "--contact" in render and "too large" in render
    replay = one_error_line(["dlq", "replay", HUGE])
    assert "too large" in replay and HUGE in replay
    explain = one_error_line(["enrollments", "list", "--contact", "²"])
    assert explain.startswith("error: --contact: ")


def test_templates_render_for_a_contact_by_any_reference(session: Session) -> None:
    lan = add_contact(session, email="lan@example.vn", first_name="Lan")
    for ref in (str(lan.id), "lan@example.vn"):
        result = runner.invoke(
            app,
            ["templates", "render", "lead_capture/welcome", "--contact", ref,
             "--channel", "email", "--json"],
        )  # fmt: skip
        assert result.exit_code == 0, result.output
        assert "Chào mừng Lan" in json.loads(result.stdout)[0]["subject"]


@pytest.mark.parametrize(
    "args",
    [
        ["contacts", "show", "1", "--events", HUGE],
        ["events", "list", "--limit", HUGE],
        ["enrollments", "list", "--limit", HUGE],
        ["dlq", "list", "--limit", HUGE],
    ],
)
def test_row_limits_beyond_bigint_are_refused_before_the_database(
    session: Session, args: list[str]
) -> None:
    add_contact(session, email="lan@example.vn")
    result = runner.invoke(app, args)
    assert result.exit_code == 2, (result.output, result.exception)
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output and "10000" in result.output
