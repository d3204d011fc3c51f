"""`mactl events list` filters, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session
from typer.testing import CliRunner

from admin_cli.main import app
from automation.core.config import Settings
from automation.core.models import Contact, Event

runner = CliRunner()
T0 = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)


def _seed(session: Session) -> tuple[int, int]:
    lan = Contact(email="lan@example.vn", phone="+84912345678", attributes={}, tags=[])
    minh = Contact(email="minh@example.vn", attributes={}, tags=[])
    session.add_all([lan, minh])
    session.flush()
    rows = [
        ("shopify", "e1", "order.created", lan.id, 0),
        ("shopify", "e2", "order.paid", lan.id, 1),
        ("events", "e3", "lead.captured", minh.id, 2),
        ("internal", "e4", "segment.entered", lan.id, 3),
        ("woocommerce", "e5", "order.delivered", minh.id, 4),
    ]
    for source, sid, kind, contact_id, minutes in rows:
        session.add(
            Event(
                source=source,
                source_event_id=sid,
                type=kind,
                contact_id=contact_id,
                occurred_at=T0 + timedelta(minutes=minutes),
                payload={"properties": {"n": minutes}},
            )
        )
    session.commit()
    return lan.id, minh.id


def _list(*args: str) -> list[dict[str, object]]:
    result = runner.invoke(app, ["events", "list", "--json", *args])
    assert result.exit_code == 0, result.output
    data: list[dict[str, object]] = json.loads(result.stdout)
    return data


def test_events_list_filters(settings: Settings, session: Session) -> None:
    lan_id, minh_id = _seed(session)
    everything = _list()
    assert [e["source_event_id"] for e in everything] == ["e5", "e4", "e3", "e2", "e1"]
    assert everything[0]["properties"] == {"n": 4}
    assert [e["source_event_id"] for e in _list("--limit", "2")] == ["e5", "e4"]
    assert {e["contact_id"] for e in _list("--contact", "0912 345 678")} == {lan_id}
    assert [e["type"] for e in _list("--contact", str(minh_id))] == [
        "order.delivered",
        "lead.captured",
    ]
    assert [e["type"] for e in _list("--type", "order.paid")] == ["order.paid"]
    assert [e["type"] for e in _list("--type", "order.*")] == [
        "order.delivered",
        "order.paid",
        "order.created",
    ]
    assert [e["type"] for e in _list("-t", "order.*", "-c", "lan@example.vn")] == [
        "order.paid",
        "order.created",
    ]
    assert [e["source_event_id"] for e in _list("--source", "internal")] == ["e4"]

    table = runner.invoke(app, ["events", "list", "--type", "lead.captured"])
    assert table.exit_code == 0 and "lead.captured" in table.stdout
    assert "order.paid" not in table.stdout

    unknown = runner.invoke(app, ["events", "list", "--contact", "ghost@example.vn"])
    assert unknown.exit_code == 2 and "no contact matches" in unknown.stderr
