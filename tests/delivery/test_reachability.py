"""Send-time feedback: unreachable contacts skip to the fallback, SMTP bounces suppress."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.contacts.reachability import channel_states
from automation.core import clock
from automation.core.config import Settings, get_settings
from automation.core.models import ChannelReachability, Message, MessageEvent, Suppression
from automation.delivery.channels import close_adapters
from automation.delivery.send import deliver_batch
from automation.delivery.unreachable import unreachable_reason
from tests.delivery.conftest import SmtpSink
from tests.delivery.helpers import Loopback, consent, contact, message

NOON = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)  # 12:00 in Ho Chi Minh City


class BouncingSmtp(SmtpSink):
    """Refuses RCPT for hard@ (550) and soft@ (451) addresses, accepts the rest."""

    async def handle_RCPT(
        self, server: object, session: object, envelope: object, address: str, options: object
    ) -> str:
        if address.startswith("hard"):
            return "550 5.1.1 mailbox does not exist"
        if address.startswith("soft"):
            return "451 4.2.1 mailbox busy, try later"
        envelope.rcpt_tos.append(address)  # type: ignore[attr-defined]
        return "250 OK"


@pytest.fixture
def bouncing(dsettings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[BouncingSmtp]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = BouncingSmtp()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    monkeypatch.setenv("SMTP_URL", f"smtp://127.0.0.1:{port}")
    get_settings.cache_clear()
    close_adapters()
    yield sink
    controller.stop()
    close_adapters()


def test_unreachable_codes_come_from_the_provider_units() -> None:
    assert unreachable_reason("zalo_zns", "-118") == "no Zalo account"
    assert unreachable_reason("zalo_zns", "-108") == "invalid phone number"
    assert unreachable_reason("zalo_zns", "-109") is None  # template problem: not the person
    assert unreachable_reason("messenger", "100/2018001") == "no matching user"
    assert unreachable_reason("messenger", "551/1545041") == "person not available"
    assert unreachable_reason("messenger", "100") is None
    assert unreachable_reason("esms", "108") == "invalid phone number"
    assert unreachable_reason("esms", "146") is None
    assert unreachable_reason("twilio", "21211") == "invalid phone number"
    assert unreachable_reason("twilio", "21614") == "not a mobile number"
    assert unreachable_reason("twilio", "21610") is None  # opted out: consent, not reach


def test_zalo_no_account_marks_zns_unreachable_and_next_step_skips_zalo(
    session: Session,
    dsettings: Settings,
    zns_server: Loopback,
    esms_server: Loopback,
    frozen_clock: clock.FrozenClock,
) -> None:
    frozen_clock.set(NOON)
    c = contact(session)
    first = message(session, c, "zalo_zns", "t/promo", "transactional", ["sms"], step="s1")
    session.commit()
    zns_server.scripted.append((200, {"error": -118, "message": "Zalo account not existed"}))
    result = deliver_batch(session, [first.id])
    assert result.failed == [first.id] and len(result.fallbacks) == 1
    row = session.scalar(select(ChannelReachability))
    assert row is not None and (row.contact_id, row.channel) == (c.id, "zalo_zns")
    assert row.state == "unreachable" and row.provider_code == "-118"
    assert row.address == c.phone and row.message_id == first.id
    assert "no Zalo account" in row.reason

    second = message(session, c, "zalo_zns", "t/promo", "transactional", ["sms"], step="s2")
    session.commit()
    result = deliver_batch(session, [second.id])
    assert len(zns_server.hits) == 1  # Zalo was not called for the second step
    assert result.failed == [second.id] and len(result.fallbacks) == 1
    session.refresh(second)
    assert "unreachable on zalo_zns" in (second.error or "")
    fallback = session.get(Message, result.fallbacks[0])
    assert fallback is not None and fallback.channel == "sms"
    assert deliver_batch(session, [fallback.id]).sent == [fallback.id]
    states = {s["channel"]: s for s in channel_states(session, c)}
    assert states["zalo_zns"]["state"] == "unreachable"
    assert states["zalo_zns"]["provider_code"] == "-118"
    assert states["sms"]["state"] == "reachable"

    c.phone = "+84912349999"  # a new number: reachable again, Zalo is tried
    third = message(session, c, "zalo_zns", "t/promo", "transactional", ["sms"], step="s3")
    session.commit()
    assert deliver_batch(session, [third.id]).sent == [third.id]
    assert len(zns_server.hits) == 2


def test_invalid_sms_number_marks_sms_unreachable(
    session: Session,
    dsettings: Settings,
    esms_server: Loopback,
    frozen_clock: clock.FrozenClock,
) -> None:
    frozen_clock.set(NOON)
    c = contact(session)
    m = message(session, c, "sms", "t/promo", "transactional", ["email"])
    session.commit()
    esms_server.scripted.append((200, {"CodeResult": "108", "ErrorMessage": "Phone invalid"}))
    result = deliver_batch(session, [m.id])
    assert result.failed == [m.id] and len(result.fallbacks) == 1
    row = session.scalar(select(ChannelReachability))
    assert row is not None and (row.channel, row.provider_code) == ("sms", "108")
    # a content problem (146) says nothing about the person
    m2 = message(session, contact(session, 2), "sms", "t/promo", "transactional", step="s2")
    session.commit()
    esms_server.scripted.append((200, {"CodeResult": "146", "ErrorMessage": "no template"}))
    deliver_batch(session, [m2.id])
    assert session.scalar(select(ChannelReachability).where(
        ChannelReachability.contact_id == m2.contact_id)) is None


def test_smtp_550_suppresses_at_once_marketing_stops_order_email_to_others_goes(
    session: Session, dsettings: Settings, bouncing: BouncingSmtp, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    hard = contact(session, 1, email="hard@example.vn")
    ok = contact(session, 2)
    for c in (hard, ok):
        consent(session, c, "email")
    first = message(session, hard, "email", "t/promo", step="s1")
    session.commit()
    assert deliver_batch(session, [first.id]).failed == [first.id]
    row = session.scalar(select(Suppression))
    assert row is not None and (row.channel, row.address) == ("email", "hard@example.vn")
    assert (row.reason, row.scope) == ("hard_bounce", "all")

    promo = message(session, hard, "email", "t/promo", step="s2")
    order_hard = message(session, hard, "email", "t/promo", "transactional", step="s3")
    order_ok = message(session, ok, "email", "t/promo", "transactional", step="s4")
    session.commit()
    result = deliver_batch(session, [promo.id, order_hard.id, order_ok.id])
    assert result.sent == [order_ok.id]
    assert sorted(result.failed) == [promo.id, order_hard.id]
    assert [rcpt for _, rcpts, _ in bouncing.messages for rcpt in rcpts] == ["lan2@example.vn"]
    session.refresh(promo)
    assert "address suppressed (hard_bounce)" in (promo.error or "")


def test_soft_bounces_suppress_after_the_limit_within_the_window(
    session: Session,
    dsettings: Settings,
    bouncing: BouncingSmtp,
    frozen_clock: clock.FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DELIVERY_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("SOFT_BOUNCE_LIMIT", "2")
    monkeypatch.setenv("SOFT_BOUNCE_WINDOW_DAYS", "30")
    get_settings.cache_clear()
    frozen_clock.set(NOON)
    c = contact(session, 1, email="soft@example.vn")
    consent(session, c, "email")

    def bounce_once(step: str) -> Message:
        m = message(session, c, "email", "t/promo", "transactional", step=step)
        session.commit()
        assert deliver_batch(session, [m.id]).dead == [m.id]
        return m

    bounce_once("s1")
    frozen_clock.advance(timedelta(days=31))  # the first one leaves the window
    bounce_once("s2")
    assert session.scalar(select(Suppression)) is None
    frozen_clock.advance(timedelta(days=1))
    bounce_once("s3")
    row = session.scalar(select(Suppression))
    assert row is not None and (row.reason, row.scope) == ("soft_bounce", "marketing")
    kinds = session.scalars(select(MessageEvent.type)).all()
    assert kinds == ["soft_bounce"] * 3
    # soft-bounce suppression stops marketing, not order status
    promo = message(session, c, "email", "t/promo", step="s4")
    session.commit()
    assert deliver_batch(session, [promo.id]).skipped == [promo.id]
