"""What the send path writes before the provider call: addresses and renderings."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.config import Settings
from automation.core.models import Message
from automation.delivery.send import deliver_batch
from tests.delivery.helpers import Loopback, consent, contact, message

NOON = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)  # 12:00 in Vietnam: inside the SMS window


def test_a_batch_writes_its_addresses_and_renderings_in_one_statement(
    session: Session, dsettings: Settings, esms_server: Loopback,
    frozen_clock: clock.FrozenClock,
) -> None:
    frozen_clock.set(NOON)
    rows = []
    for n in (1, 2, 3):
        c = contact(session, n)
        if n != 3:  # contact 3 has no SMS consent: skipped, its address still stored
            consent(session, c, "sms")
        rows.append(message(session, c, "sms", step=f"s{n}"))
    session.commit()
    ids = [m.id for m in rows]
    statements: list[tuple[str, int]] = []  # (SQL, parameter sets sent with it)

    def seen(conn: Any, cursor: Any, statement: str, params: Any, ctx: Any, many: bool) -> None:
        statements.append((" ".join(statement.split()), len(params) if many else 1))

    engine = session.get_bind()
    event.listen(engine, "before_cursor_execute", seen)
    try:
        result = deliver_batch(session, ids)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert sorted(result.sent) == ids[:2] and result.skipped == [ids[2]]
    # One UPDATE setting the renderings; on PostgreSQL executed once, not once per row
    # (SQLite runs one prepared statement over the rows: executemany).
    writes = [
        (s, n) for s, n in statements
        if s.startswith("UPDATE messages") and "rendered" in s.split("WHERE")[0]
    ]
    assert len(writes) == 1, writes
    if session.get_bind().dialect.name == "postgresql":
        assert writes[0][1] == 1, writes

    session.expire_all()
    stored = {m.id: m for m in session.scalars(select(Message).where(Message.id.in_(ids)))}
    for n, mid in enumerate(ids[:2], 1):
        m = stored[mid]
        assert m.status == "sent" and m.address == f"+8491234{n:04d}"
        assert m.rendered["text"].startswith("[QC]") and "/t/c/" in m.rendered["text"]
        assert list(m.links.values()) == ["https://shop.example.vn/sale"]
        assert m.segments is not None and m.segments >= 1
    skipped = stored[ids[2]]
    assert skipped.status == "skipped" and skipped.address == "+84912340003"
