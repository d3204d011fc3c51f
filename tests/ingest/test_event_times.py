"""Issue 11 defect 9: naive event times are read in DEFAULT_TIMEZONE; absurd dates are 422."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from tests.ingest.helpers import (
    counts,
    events_of,
    fixture_json,
    native_event,
    post_native,
    post_shop,
    settled,
)

LAN = {"external_id": "u-1", "email": "lan@example.vn"}


def test_naive_occurred_at_is_read_in_the_default_timezone(
    client: TestClient, session: Session
) -> None:
    response = post_native(client, native_event("n1", "lead.captured", LAN,
                                                occurred_at="2026-11-02T10:00:00"))
    assert response.status_code == 202, response.text
    [event] = events_of(session)
    assert event.occurred_at == datetime(2026, 11, 2, 3, 0, tzinfo=UTC)  # 10:00 in Hanoi


@pytest.mark.parametrize(
    "when",
    ["0001-01-01T00:00:00", "0001-01-01T00:00:00+07:00", "1999-12-31T23:59:59+00:00",
     "9999-12-31T23:59:59", "9999-12-31T23:59:59+00:00"],
)
def test_absurd_dates_are_refused_naming_the_field(
    client: TestClient, session: Session, when: str
) -> None:
    single = post_native(client, native_event("a1", "lead.captured", LAN, occurred_at=when))
    assert single.status_code == 422, single.text
    assert single.json()["field"] == "occurred_at"
    assert "2000-01-01" in single.text
    batch = {"events": [native_event("b1", "lead.captured", LAN),
                        native_event("b2", "lead.captured", LAN, occurred_at=when)]}
    answer = post_native(client, batch)
    assert answer.status_code == 422 and answer.json()["field"] == "events[1].occurred_at"
    assert set(counts(session).values()) == {0}


def test_tomorrow_is_accepted_and_the_day_after_is_not(
    client: TestClient, session: Session
) -> None:
    soon = (datetime.now(UTC) + timedelta(hours=20)).isoformat()
    late = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    assert post_native(client, native_event("t1", "lead.captured", LAN,
                                            occurred_at=soon)).status_code == 202
    assert post_native(client, native_event("t2", "lead.captured", LAN,
                                            occurred_at=late)).status_code == 422


def test_shop_webhook_with_a_year_one_date_is_quarantined(
    client: TestClient, session: Session
) -> None:
    """A shop cannot fix a payload: it is kept quarantined with the field, never mapped."""
    order = fixture_json("shopify/orders_create.json")
    order["updated_at"] = "0001-01-01T00:00:00+07:00"
    response = post_shop(client, order, "orders/create")
    row = settled(session, response)
    assert row.status == "quarantined" and (row.reason or "").startswith("updated_at: ")
    stored = counts(session)
    assert stored.pop("inbox") == 1
    assert set(stored.values()) == {0}
