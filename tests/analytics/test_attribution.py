"""A click on the welcome email's tracked link, an order two days later: credited, then
taken back by a refund (shipped playbooks, tracking endpoint, both backends)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

from fastapi.testclient import TestClient
from sqlalchemy import select

from automation import links
from automation.core.models import Message
from automation.core.models_analytics import Attribution
from tests.analytics.helpers import report_json, sequence
from tests.feedback.conftest import build_app
from tests.playbooks.test_playbooks import Shop, _order


def _welcome(shop: Shop, email: str) -> Message:
    with shop.sim.factory() as session:
        message = session.scalars(
            select(Message).where(
                Message.template == "lead_capture/welcome", Message.address == email
            )
        ).one()
        assert message.links, "the welcome email has tracked links"
        return message


def _click(shop: Shop, message: Message) -> None:
    url = links.tracking_url(message.id, 0)
    with TestClient(build_app()) as client:
        response = client.get(urlsplit(url).path, follow_redirects=False)
    assert response.status_code == 302
    shop.sim.drain()


def test_click_then_order_two_days_later_is_credited_and_a_refund_takes_it_back(
    shop: Shop,
) -> None:
    lan = shop.person("Lan", "lan@example.com")
    shop.event("lead.captured", lan, form="popup")
    _click(shop, _welcome(shop, "lan@example.com"))
    shop.advance(timedelta(days=2), step=timedelta(hours=12))
    shop.event("order.created", lan, **_order("A-750", total=750_000))

    report = report_json()
    lead = sequence(report, "lead_capture")
    assert (lead["converted"], lead["revenue"], lead["revenue_text"]) == (1, 750_000, "750.000 ₫")
    [step] = [s for s in lead["steps"] if s["revenue"]]
    assert (step["step"], step["channel"]) == ("0", "email")
    assert step["template"] == "lead_capture/welcome"
    assert (step["converted"], step["revenue"], step["clicked"]) == (1, 750_000, 1)
    assert report["totals"]["revenue"] == 750_000
    assert sequence(report, "order_status")["revenue"] == 0  # transactional: no click
    with shop.sim.factory() as session:
        credit = session.scalars(select(Attribution)).one()
        assert (credit.model, credit.channel, credit.revenue) == ("click", "email", 750_000)

    shop.event("order.refunded", lan, order_id="A-750")
    lead = sequence(report_json("--sequence", "lead_capture"), "lead_capture")
    assert (lead["converted"], lead["revenue"]) == (0, 0)


def test_an_order_after_the_click_window_is_not_credited(shop: Shop) -> None:
    minh = shop.person("Minh", "minh@example.com", phone="0987654321")
    shop.event("lead.captured", minh, form="popup")
    _click(shop, _welcome(shop, "minh@example.com"))
    shop.advance(timedelta(days=6), step=timedelta(days=1))  # click window: 5 days
    shop.event("order.created", minh, **_order("B-1", total=500_000))
    lead = sequence(report_json(), "lead_capture")
    assert (lead["converted"], lead["revenue"], lead["clicked"]) == (0, 0, 1)


def test_conversions_run_after_the_order_is_stored() -> None:
    from automation.analytics.conversions import record_conversions
    from automation.contacts.orders import apply_commerce_event
    from automation.core.processing import HANDLERS

    assert HANDLERS.index(record_conversions) > HANDLERS.index(apply_commerce_event)
