"""At send time a template that explodes fails its own message, with the reason; others go."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.config import Settings
from automation.delivery.send import deliver_batch
from tests.delivery.helpers import Loopback, contact, message

NOON = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)


def test_exploding_template_fails_only_its_message(
    session: Session, dsettings: Settings, zns_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    assert dsettings.templates_dir
    (Path(dsettings.templates_dir) / "t" / "boom.yaml").write_text(
        "zalo_zns:\n  template_id: '000009'\n  params:\n"
        '    customer_name: "{% for i in range(100000) %}{% for j in range(100000) %}'
        'a{% endfor %}{% endfor %}"\n',
        "utf-8",
    )
    good = message(session, contact(session, 1), "zalo_zns", "t/promo", step="good")
    bad = message(session, contact(session, 2), "zalo_zns", "t/boom", step="bad")
    session.commit()
    result = deliver_batch(session, [bad.id, good.id])
    assert result.sent == [good.id] and result.failed == [bad.id]
    session.refresh(bad)
    assert bad.status == "failed"
    assert "template 't/boom'" in (bad.error or "") and "range() of 100,000" in (bad.error or "")
    assert [hit.body["tracking_id"] for hit in zns_server.hits] == [str(good.id)]
