"""End to end, per shipped playbook, on SQLite and PostgreSQL with the clock moved forward.

Each test applies playbooks/ as shipped, feeds shop events through the native parser, the
ingest store and process_event, moves the clock with the scheduler's run_pass, sends
through delivery (file transport) and asserts the messages (channel, template, rendered
text) and the exits.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from automation.apply import apply_paths
from automation.core import clock
from automation.core.config import Settings, get_settings
from automation.core.db import session_factory
from automation.core.models import Contact, Enrollment, Message, Sequence
from demo.simulate import Simulation, _load_handlers

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
_ids = itertools.count(1)


@dataclass
class Sent:
    """One outbox row as the tests look at it."""

    channel: str
    template: str
    status: str
    rendered: dict[str, Any]

    @property
    def text(self) -> str:
        """Everything rendered, flattened (subject, body, ZNS params)."""
        parts: list[str] = []

        def walk(value: Any) -> None:
            if isinstance(value, dict):
                for item in value.values():
                    walk(item)
            elif isinstance(value, list):
                for item in value:
                    walk(item)
            elif value is not None:
                parts.append(str(value))

        walk(self.rendered)
        return "\n".join(parts)


class Shop:
    """A shop feeding events into the system, on the test's frozen clock."""

    def __init__(self, sim: Simulation, fake: clock.FrozenClock) -> None:
        self.sim = sim
        self.clock = fake

    @staticmethod
    def person(name: str, email: str | None = None, phone: str | None = "0912345678",
               locale: str = "vi") -> dict[str, Any]:
        """A native contact with every consent granted."""
        consent = {"marketing": True, "transactional": True}
        data: dict[str, Any] = {
            "external_id": f"cus-{name}",
            "first_name": name,
            "last_name": "Nguyễn Thị",
            "locale": locale,
            "consent": {"email": consent, "sms": consent, "zalo": consent},
        }
        if email:
            data["email"] = email
        if phone:
            data["phone"] = phone
        return data

    def event(self, type_: str, contact: dict[str, Any], at: datetime | None = None,
              **properties: Any) -> None:
        """Store and process one shop event (occurred now unless ``at``), then send."""
        when = at or self.clock.now()
        self.sim.ingest(
            [{
                "id": f"evt-{next(_ids)}",
                "type": type_,
                "occurred_at": when.isoformat(),
                "contact": contact,
                "properties": properties,
            }]
        )  # fmt: skip

    def advance(self, delta: timedelta, step: timedelta = timedelta(hours=1)) -> None:
        """Move the clock forward, running the scheduler pass every ``step``."""
        end = self.clock.now() + delta
        while self.clock.now() < end:
            self.sim.run_pass(min(self.clock.now() + step, end))

    def click(self, contact: dict[str, Any], template: str) -> None:
        """The contact clicks the link of the message sent with ``template``."""
        with self.sim.factory() as session:
            message = session.scalars(
                select(Message)
                .join(Contact, Contact.id == Message.contact_id)
                .where(Contact.email == contact.get("email"), Message.template == template)
            ).first()
            assert message is not None, f"no {template} message to click"
            self.sim.clicks.append((self.clock.now(), message.id, "clicked"))
        self.sim.engage_until(self.clock.now() + timedelta(seconds=1))
        self.sim.drain()

    def messages(self, contact: dict[str, Any], sequence: str | None = None) -> list[Sent]:
        """Outbox rows of one contact (by e-mail, else phone), oldest first."""
        with self.sim.factory() as session:
            person = self._contact(session, contact)
            query = select(Message).where(Message.contact_id == person.id).order_by(Message.id)
            rows = session.scalars(query).all()
            return [
                Sent(m.channel, m.template, m.status, dict(m.rendered or {}))
                for m in rows
                if sequence is None or m.template.startswith(f"{sequence}/")
            ]

    def sent(self, contact: dict[str, Any], sequence: str | None = None) -> list[tuple[str, str]]:
        """(channel, template) of the messages that went out, oldest first."""
        return [
            (m.channel, m.template)
            for m in self.messages(contact, sequence)
            if m.status in ("sent", "delivered", "opened", "clicked")
        ]

    def enrollments(self, contact: dict[str, Any], sequence: str) -> list[Enrollment]:
        """The contact's enrollments in ``sequence``, oldest first."""
        with self.sim.factory() as session:
            person = self._contact(session, contact)
            return list(
                session.scalars(
                    select(Enrollment)
                    .join(Sequence, Sequence.id == Enrollment.sequence_id)
                    .where(Sequence.key == sequence, Enrollment.contact_id == person.id)
                    .order_by(Enrollment.id)
                )
            )

    @staticmethod
    def _contact(session: Any, contact: dict[str, Any]) -> Contact:
        column = Contact.email if contact.get("email") else Contact.phone
        value = contact.get("email") or "+84" + str(contact["phone"]).lstrip("0")
        person = session.scalars(select(Contact).where(column == value)).one()
        assert isinstance(person, Contact)
        return person


@pytest.fixture
def shop(
    settings: Settings,
    frozen_clock: clock.FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Shop]:
    """The shipped playbooks applied to an empty database; sends go to a file."""
    from automation.runtime.broker import configure_broker

    monkeypatch.setenv("OUTBOX_FILE", str(tmp_path / "outbox.jsonl"))
    for name in ("SMTP_URL", "ESMS_API_KEY", "ZALO_ACCESS_TOKEN", "FACEBOOK_PAGE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    configure_broker(get_settings())
    _load_handlers()
    factory = session_factory(get_settings())
    with factory() as session:
        apply_paths(session, [PLAYBOOKS])
    sim = Simulation(factory, frozen_clock, seed=1)
    sim.drain()
    yield Shop(sim, frozen_clock)
    try:
        from automation.delivery.channels import close_adapters
    except ImportError:  # pragma: no cover
        return
    close_adapters()


ITEMS = [
    {"sku": "AT-001", "name": "Áo thun cotton", "quantity": 2, "price": 250000},
    {"sku": "QJ-014", "name": "Quần jean ống suông", "quantity": 1, "price": 750000},
]


def _order(order_id: str, **extra: Any) -> dict[str, Any]:
    return {"order_id": order_id, "order_number": f"#{order_id}", "total": 1250000,
            "currency": "VND", "items": ITEMS, **extra}  # fmt: skip


# --------------------------------------------------------------------------- lead_capture


def test_lead_capture_welcome_then_code_reminder(shop: Shop) -> None:
    lan = shop.person("Lan", "lan@example.com")
    shop.event("lead.captured", lan, form="popup")
    assert shop.sent(lan, "lead_capture") == [("email", "lead_capture/welcome")]
    welcome = shop.messages(lan, "lead_capture")[0]
    assert "WELCOME10" in welcome.text and "Chào mừng Lan" in welcome.text

    shop.advance(timedelta(days=2, hours=1), step=timedelta(hours=12))
    assert shop.sent(lan, "lead_capture") == [
        ("email", "lead_capture/welcome"),
        ("zalo_zns", "lead_capture/code_reminder"),
    ]
    [enrollment] = shop.enrollments(lan, "lead_capture")
    assert enrollment.state == "done"


def test_lead_capture_exits_on_first_order(shop: Shop) -> None:
    minh = shop.person("Minh", "minh@example.com", phone="0987654321", locale="en")
    shop.event("lead.captured", minh, form="footer")
    welcome = shop.messages(minh, "lead_capture")[0]
    assert "Welcome to" in welcome.text  # English variant for locale en
    shop.advance(timedelta(hours=5), step=timedelta(hours=5))
    shop.event("order.created", minh, **_order("9001"))
    shop.advance(timedelta(days=3), step=timedelta(days=1))
    [enrollment] = shop.enrollments(minh, "lead_capture")
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "converted")
    assert ("zalo_zns", "lead_capture/code_reminder") not in shop.sent(minh)


# --------------------------------------------------------------------------- nurture


def test_nurture_starts_after_three_days_and_exits_on_purchase(shop: Shop) -> None:
    hoa = shop.person("Hoa", "hoa@example.com", phone="0903123456")
    shop.event("lead.captured", hoa, form="popup")
    shop.advance(timedelta(days=2), step=timedelta(hours=12))
    assert shop.enrollments(hoa, "nurture") == []  # not yet 3 days

    shop.advance(timedelta(days=1, hours=6), step=timedelta(hours=6))
    assert shop.sent(hoa, "nurture") == [("email", "nurture/guide")]
    shop.advance(timedelta(days=2), step=timedelta(hours=12))
    assert shop.sent(hoa, "nurture") == [("email", "nurture/guide"), ("email", "nurture/stories")]

    shop.event("order.created", hoa, **_order("9101"))
    shop.advance(timedelta(days=4), step=timedelta(days=1))
    [enrollment] = shop.enrollments(hoa, "nurture")
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "converted")
    assert not any(t == "nurture/offer" for _, t in shop.sent(hoa))


# --------------------------------------------------------------------------- cart_recovery


def _checkout(shop: Shop, contact: dict[str, Any], cart_id: str) -> None:
    shop.event(
        "checkout.started", contact, cart_id=cart_id, total=1250000, currency="VND",
        items=ITEMS, recovery_url=f"https://shop.example.vn/checkouts/{cart_id}/recover",
    )  # fmt: skip


def test_cart_recovery_reminder_after_an_hour_and_exit_on_order(shop: Shop) -> None:
    an = shop.person("An", "an@example.com", phone="0911222333")
    _checkout(shop, an, "ck-1")
    shop.advance(timedelta(hours=1, minutes=30), step=timedelta(minutes=30))
    assert shop.sent(an, "cart_recovery") == []  # abandoned at +1h, reminder 1h later
    shop.advance(timedelta(hours=1), step=timedelta(minutes=30))
    assert shop.sent(an, "cart_recovery") == [("zalo_zns", "cart_recovery/reminder")]
    reminder = shop.messages(an, "cart_recovery")[0]
    assert reminder.rendered["params"]["cart_total"] == "1.250.000 ₫"
    assert "Áo thun cotton và 1 sản phẩm khác" in reminder.text
    assert "ck-1/recover" in reminder.text

    shop.advance(timedelta(hours=3), step=timedelta(hours=1))
    shop.event("order.created", an, **_order("9201", checkout_token="ck-1"))
    [enrollment] = shop.enrollments(an, "cart_recovery")
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "converted")
    shop.advance(timedelta(days=1), step=timedelta(hours=6))
    assert shop.sent(an, "cart_recovery") == [("zalo_zns", "cart_recovery/reminder")]


def test_cart_recovery_last_call_shows_items_and_total(shop: Shop) -> None:
    binh = shop.person("Bình", "binh@example.com", phone="0977000111")
    _checkout(shop, binh, "ck-2")
    shop.advance(timedelta(hours=26), step=timedelta(hours=1))
    assert shop.sent(binh, "cart_recovery") == [
        ("zalo_zns", "cart_recovery/reminder"),
        ("email", "cart_recovery/last_call"),
    ]
    last = shop.messages(binh, "cart_recovery")[1]
    assert "1.250.000" in last.rendered["subject"] and "Quần jean ống suông" in last.text
    [enrollment] = shop.enrollments(binh, "cart_recovery")
    assert enrollment.state == "done"


def test_cart_recovery_click_exits_as_engaged(shop: Shop) -> None:
    chi = shop.person("Chi", "chi@example.com", phone="0966555444")
    _checkout(shop, chi, "ck-3")
    shop.advance(timedelta(hours=2, minutes=30), step=timedelta(minutes=30))
    shop.click(chi, "cart_recovery/reminder")
    shop.advance(timedelta(hours=24), step=timedelta(hours=6))
    [enrollment] = shop.enrollments(chi, "cart_recovery")
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "engaged")
    assert ("email", "cart_recovery/last_call") not in shop.sent(chi)


# --------------------------------------------------------------------------- order_status


def test_order_status_from_confirmation_to_review_request(shop: Shop) -> None:
    dung = shop.person("Dung", "dung@example.com", phone="0935111222")
    shop.event("order.created", dung, **_order("9301"))
    assert shop.sent(dung, "order_status") == [
        ("zalo_zns", "order_status/confirmation"),
        ("email", "order_status/receipt"),
    ]
    receipt = shop.messages(dung, "order_status")[1]
    assert "#9301" in receipt.rendered["subject"] and "1.250.000" in receipt.text

    shop.advance(timedelta(hours=1))
    shop.event("order.paid", dung, **_order("9301", status="paid"))
    shop.advance(timedelta(hours=20), step=timedelta(hours=10))
    tracking = "https://donhang.ghn.vn/?order_code=GHN123456"
    shop.event("order.shipped", dung, **_order("9301", carrier="GHN",
                                               tracking_number="GHN123456",
                                               tracking_url=tracking))  # fmt: skip
    shop.advance(timedelta(days=2), step=timedelta(hours=12))
    shop.event("order.delivered", dung, **_order("9301"))
    shop.advance(timedelta(days=2, hours=1), step=timedelta(hours=12))

    assert shop.sent(dung, "order_status") == [
        ("zalo_zns", "order_status/confirmation"),
        ("email", "order_status/receipt"),
        ("zalo_zns", "order_status/paid"),
        ("zalo_zns", "order_status/shipped"),
        ("zalo_zns", "order_status/delivered"),
        ("email", "order_status/review_request"),
    ]
    shipped = shop.messages(dung, "order_status")[3]
    assert shipped.rendered["params"]["tracking_url"].startswith("https://")
    [enrollment] = shop.enrollments(dung, "order_status")
    assert enrollment.state == "done"


def test_order_status_shipped_message_shows_the_carriers_tracking_link(shop: Shop) -> None:
    vy = shop.person("Vy", "vy@example.com", phone="0944777888")
    shop.event("order.created", vy, **_order("9302"))
    shop.advance(timedelta(hours=13), step=timedelta(hours=13))  # COD: no payment yet
    tracking = "https://donhang.ghn.vn/?order_code=GHN777"
    shop.event("order.shipped", vy, **_order("9302", carrier="GHN", tracking_number="GHN777",
                                             tracking_url=tracking))  # fmt: skip
    shop.advance(timedelta(hours=1))
    shipped = [m for m in shop.messages(vy, "order_status") if m.template.endswith("/shipped")]
    assert shipped, "no shipped message"
    assert shipped[0].rendered["params"]["carrier"] == "GHN"
    assert shipped[0].rendered["params"]["tracking_url"] == tracking


def test_order_status_cancelled_order_exits(shop: Shop) -> None:
    giang = shop.person("Giang", "giang@example.com", phone="0399888777")
    shop.event("order.created", giang, **_order("9401"))
    shop.advance(timedelta(hours=3))
    shop.event("order.cancelled", giang, **_order("9401", status="cancelled"))
    shop.advance(timedelta(days=8), step=timedelta(days=1))
    [enrollment] = shop.enrollments(giang, "order_status")
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "cancelled")
    assert shop.sent(giang, "order_status") == [
        ("zalo_zns", "order_status/confirmation"),
        ("email", "order_status/receipt"),
    ]


# --------------------------------------------------------------------------- winback


def test_winback_reminder_offer_and_reentry_after_180_days(shop: Shop) -> None:
    start = shop.clock.now()
    hung = shop.person("Hùng", "hung@example.com", phone="0905333444")
    shop.event("order.created", hung, at=start - timedelta(days=100), **_order("9501"))
    shop.advance(timedelta(hours=1))
    assert shop.sent(hung, "winback") == [("email", "winback/reminder")]
    reminder = shop.messages(hung, "winback")[0]
    assert "Hùng" in reminder.text and "nhớ bạn" in reminder.rendered["subject"]

    shop.advance(timedelta(days=5), step=timedelta(days=5))
    assert ("zalo_zns", "winback/offer") in shop.sent(hung, "winback")
    shop.advance(timedelta(days=8), step=timedelta(days=4))
    assert shop.sent(hung, "winback")[-1] == ("email", "winback/last_chance")
    assert [e.state for e in shop.enrollments(hung, "winback")] == ["done"]

    # buys again at day 20, lapses again at day 111: too soon (re-entry after 180 days)
    shop.advance(timedelta(days=7), step=timedelta(days=7))
    shop.event("order.created", hung, **_order("9502"))
    shop.advance(timedelta(days=92), step=timedelta(days=46))
    assert len(shop.enrollments(hung, "winback")) == 1

    # buys at day 113, lapses at day ~204: more than 180 days after the first entry
    shop.event("order.created", hung, **_order("9503"))
    shop.advance(timedelta(days=92), step=timedelta(days=46))
    enrollments = shop.enrollments(hung, "winback")
    assert len(enrollments) == 2
    assert enrollments[1].entered_at - enrollments[0].entered_at >= timedelta(days=180)
    assert shop.sent(hung, "winback").count(("email", "winback/reminder")) == 2


def test_winback_exits_when_the_customer_orders(shop: Shop) -> None:
    start = shop.clock.now()
    thu = shop.person("Thu", "thu@example.com", phone="0913444555")
    shop.event("order.created", thu, at=start - timedelta(days=95), **_order("9601"))
    shop.advance(timedelta(hours=1))
    shop.advance(timedelta(days=2), step=timedelta(days=1))
    shop.event("order.created", thu, **_order("9602"))
    [enrollment] = shop.enrollments(thu, "winback")
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "converted")
