"""Retention: raw payloads and message bodies purged after their days, by the scheduler."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, event, select
from sqlalchemy.orm import Session

from automation.core.config import get_settings
from automation.core.db import session_factory
from automation.core.models import Message
from automation.core.models_inbox import InboxDelivery
from automation.core.vocabulary import PENDING_STATUSES, SETTLED_STATUSES, Status
from automation.privacy.retention import expired_bodies, purge_bodies, purge_expired
from automation.runtime.scheduler import run_pass
from automation.runtime.tasks import TASKS
from tests.delivery.helpers import contact
from tests.privacy.conftest import AT


def _inbox(session: Session, key: str, status: str, age_days: int) -> int:
    row = InboxDelivery(
        source="shopify",
        topic="orders/create",
        dedupe_key=key,
        status=status,
        headers={},
        body=b'{"email": "lan@example.vn"}',
        received_at=AT - timedelta(days=age_days),
    )
    session.add(row)
    session.flush()
    return row.id


def _message(session: Session, step: str, status: str, age_days: int) -> int:
    when = AT - timedelta(days=age_days)
    row = Message(
        step_key=step,
        contact_id=contact(session, int(step[1:])).id,
        channel="sms",
        template="t/promo",
        status=status,
        attempts=1,
        fallback=[],
        rendered={"text": "Chào chị Lan"},
        links={"k": "https://shop.example.vn/p/1"},
        created_at=when,
        updated_at=when,
    )
    session.add(row)
    session.flush()
    return row.id


@pytest.fixture
def aged(session: Session, monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    monkeypatch.setenv("RETENTION_DAYS_RAW", "10")  # configurable: 10 instead of 30
    get_settings.cache_clear()
    ids = {
        "raw_old": _inbox(session, "a", "mapped", 11),
        "raw_old_quarantined": _inbox(session, "b", "quarantined", 40),
        "raw_old_pending": _inbox(session, "c", "pending", 40),
        "raw_recent": _inbox(session, "d", "mapped", 9),
        "body_old": _message(session, "s1", "delivered", 91),
        "body_old_queued": _message(session, "s2", "queued", 91),
        "body_recent": _message(session, "s3", "sent", 89),
    }
    session.commit()
    return ids


def test_purge_expired_keeps_what_is_recent_or_unprocessed(
    session: Session, aged: dict[str, int]
) -> None:
    assert purge_expired(session, AT) == 3
    session.commit()
    session.expire_all()
    inbox = set(session.scalars(select(InboxDelivery.id)))
    assert inbox == {aged["raw_old_pending"], aged["raw_recent"]}
    old = session.get_one(Message, aged["body_old"])
    assert old.rendered == {} and old.status == "delivered"
    assert old.links == {"k": "https://shop.example.vn/p/1"}  # clicks keep redirecting
    assert old.updated_at == AT - timedelta(days=91)  # the purge is not a status change
    for key in ("body_old_queued", "body_recent"):
        assert session.get_one(Message, aged[key]).rendered == {"text": "Chào chị Lan"}
    assert purge_expired(session, AT) == 0  # nothing is purged twice


def test_the_scheduler_pass_runs_the_retention_task(session: Session, aged: dict[str, int]) -> None:
    assert "retention" in [task.name for task in TASKS]
    factory = session_factory(get_settings())
    results = run_pass(factory, AT, [t for t in TASKS if t.name == "retention"])
    assert results == {"retention": 3}
    assert session.get(InboxDelivery, aged["raw_old"]) is None


def test_every_status_but_the_pending_ones_is_purged(session: Session) -> None:
    statuses = {v for k, v in vars(Status).items() if k.isupper() and isinstance(v, str)}
    assert set(SETTLED_STATUSES) == statuses - set(PENDING_STATUSES)
    ids = {s: _message(session, f"s{n + 10}", s, 91) for n, s in enumerate(sorted(statuses))}
    session.commit()
    assert purge_bodies(session, AT - timedelta(days=90)) == len(SETTLED_STATUSES)
    session.commit()
    emptied = {m.status for m in session.scalars(select(Message)) if m.rendered == {}}
    assert emptied == set(SETTLED_STATUSES) and set(ids) - emptied == set(PENDING_STATUSES)


def test_expired_bodies_are_found_through_the_status_index(sqlite_url: str) -> None:
    """No scan of every message each scheduler pass: SQLite's plan uses the index."""
    engine = create_engine(sqlite_url)
    seen: list[tuple[str, Any]] = []

    def note(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", note)
    with engine.connect() as conn:
        conn.execute(expired_bodies(AT)).all()
        event.remove(engine, "before_cursor_execute", note)
        statement, parameters = seen[-1]
        plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
    engine.dispose()
    details = " ".join(str(row[-1]) for row in plan)
    assert "USING INDEX ix_messages_status_updated" in details, details
