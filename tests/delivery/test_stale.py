"""The scheduler sweep re-queues lost, stuck and due outbox rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.config import Settings
from automation.core.models import Message
from automation.delivery.stale import requeue_stale
from tests.delivery.helpers import contact, message

NOW = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)


def test_requeue_stale_rows(session: Session, dsettings: Settings,
                            frozen_clock: clock.FrozenClock) -> None:
    c = contact(session)
    old = NOW - timedelta(seconds=dsettings.outbox_stale_seconds + 5)
    stuck = message(session, c, step="a", status="sending", updated_at=old)
    lost = message(session, c, step="b", status="queued", updated_at=old)
    fresh = message(session, c, step="c", status="queued", updated_at=NOW)
    due = message(session, c, step="d", status="deferred", not_before=NOW - timedelta(minutes=1),
                  updated_at=NOW)
    later = message(session, c, step="e", status="deferred", not_before=NOW + timedelta(hours=1),
                    updated_at=old)
    backoff = message(session, c, step="f", status="queued", updated_at=old,
                      not_before=NOW + timedelta(minutes=5))
    session.commit()
    frozen_clock.set(NOW)
    assert requeue_stale(session, NOW) == 3
    session.expire_all()
    status = {m.step_key: m.status for m in session.query(Message)}
    assert status == {"a": "queued", "b": "queued", "c": "queued", "d": "queued",
                      "e": "deferred", "f": "queued"}
    assert requeue_stale(session, NOW) == 0  # touched rows are not re-sent at once
    for row in (stuck, lost, fresh, due, later, backoff):
        assert row.id is not None


def test_registered_in_scheduler() -> None:
    from automation.runtime.tasks import TASKS

    assert dict(TASKS)["stale_outbox"] is requeue_stale
