"""The scheduler sweep re-queues lost, stuck and due outbox rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.config import Settings, get_settings
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


RENDERED = {"text": "[QC] Giảm 20% hôm nay"}


def test_stale_sending_marketing_ends_unknown_transactional_is_resent(
    session: Session, dsettings: Settings, frozen_clock: clock.FrozenClock
) -> None:
    """A call in flight at a crash: marketing is not sent again, transactional is."""
    c = contact(session)
    old = NOW - timedelta(seconds=dsettings.outbox_stale_seconds + 5)
    message(session, c, step="promo", status="sending", updated_at=old, rendered=RENDERED)
    message(session, c, step="order", status="sending", updated_at=old, rendered=RENDERED,
            purpose="transactional")
    message(session, c, step="unrendered", status="sending", updated_at=old)  # never called
    message(session, c, step="busy", status="sending", updated_at=NOW, rendered=RENDERED)
    session.commit()
    frozen_clock.set(NOW)
    assert requeue_stale(session, NOW) == 2
    session.expire_all()
    rows = {m.step_key: m for m in session.query(Message)}
    assert {k: m.status for k, m in rows.items()} == {
        "promo": "unknown", "order": "queued", "unrendered": "queued", "busy": "sending"}
    assert "in flight" in (rows["promo"].error or "")
    assert "DELIVERY_AMBIGUOUS_MARKETING" in (rows["promo"].error or "")
    later = NOW + timedelta(seconds=dsettings.outbox_stale_seconds + 5)
    assert requeue_stale(session, later) == 2  # order + unrendered (lost again); never promo
    session.expire_all()
    assert session.get(Message, rows["promo"].id).status == "unknown"  # type: ignore[union-attr]


def test_ambiguous_marketing_resend_setting(
    session: Session, dsettings: Settings, frozen_clock: clock.FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """DELIVERY_AMBIGUOUS_MARKETING=resend re-queues marketing rows too (at least once)."""
    monkeypatch.setenv("DELIVERY_AMBIGUOUS_MARKETING", "resend")
    get_settings.cache_clear()
    c = contact(session)
    old = NOW - timedelta(seconds=dsettings.outbox_stale_seconds + 5)
    message(session, c, step="promo", status="sending", updated_at=old, rendered=RENDERED)
    session.commit()
    frozen_clock.set(NOW)
    assert requeue_stale(session, NOW) == 1
    session.expire_all()
    assert [m.status for m in session.query(Message)] == ["queued"]


def test_unknown_moves_forward_on_a_provider_result() -> None:
    """A callback can still tell what happened to an ``unknown`` row; nothing re-sends it."""
    from automation.feedback.results import next_status

    assert next_status("unknown", "delivered") == "delivered"
    assert next_status("unknown", "failed") == "failed"
    assert next_status("unknown", "sending") is None
