"""Send-time policy through deliver_batch with the real adapters on loopback servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.config import Settings
from automation.core.models import Message, Suppression
from automation.delivery.send import deliver_batch
from tests.delivery.helpers import Loopback, consent, contact, message

# 23:00 in Ho Chi Minh City (UTC+7)
LATE = datetime(2026, 11, 2, 16, 0, tzinfo=UTC)
NOON = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)


def test_marketing_sms_needs_prior_consent(
    session: Session, dsettings: Settings, esms_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    c = contact(session)
    m = message(session, c, "sms")
    session.commit()
    result = deliver_batch(session, [m.id])
    session.refresh(m)
    assert result.skipped == [m.id]
    assert m.status == "skipped" and "prior marketing consent" in (m.error or "")
    assert esms_server.hits == []


def test_denied_consent_skips_even_zalo(
    session: Session, dsettings: Settings, zns_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    c = contact(session)
    consent(session, c, "zalo", "denied")
    m = message(session, c, "zalo_zns")
    session.commit()
    deliver_batch(session, [m.id])
    session.refresh(m)
    assert m.status == "skipped" and "denied" in (m.error or "")
    assert zns_server.hits == []


def test_label_and_optout_on_marketing_sms(
    session: Session, dsettings: Settings, esms_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    c = contact(session)
    consent(session, c, "sms")
    m = message(session, c, "sms")
    session.commit()
    result = deliver_batch(session, [m.id])
    assert result.sent == [m.id]
    content = esms_server.hits[0].body["Content"]
    assert content.startswith("[QC] Shop: Lan oi")
    assert content.endswith(f"/u/{content.rsplit('/u/', 1)[1]}")
    assert "Tu choi QC: http://" in content
    assert "/t/c/" in content and "shop.example.vn/sale" not in content
    session.refresh(m)
    assert m.status == "sent" and m.provider == "esms"
    assert m.provider_message_id == f"sms-{m.id}" and m.segments == 1
    assert m.links == {"0": "https://shop.example.vn/sale"}
    assert esms_server.hits[0].body["RequestId"] == str(m.id)


def test_marketing_email_label_footer_and_tracked_links(
    session: Session, dsettings: Settings, smtp_sink: tuple, frozen_clock: clock.FrozenClock
) -> None:
    import email
    from email import policy as email_policy

    frozen_clock.set(LATE)  # no quiet hours for e-mail in the default profile
    c = contact(session)
    consent(session, c, "email")
    m = message(session, c, "email")
    session.commit()
    assert deliver_batch(session, [m.id]).sent == [m.id]
    raw = smtp_sink[0].messages[0][2]
    parsed = email.message_from_bytes(raw, policy=email_policy.default)
    assert str(parsed["Subject"]).startswith("[QC] Ưu đãi cho Lan")
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Hủy đăng ký" in html and "/u/" in html and "/t/c/" in html
    assert "Hủy đăng ký: http" in text
    assert "List-Unsubscribe" in parsed
    session.refresh(m)
    assert m.links == {"0": "https://shop.example.vn/sale?a=1&b=2"}


def test_quiet_hours_defer_to_seven_next_morning(
    session: Session, dsettings: Settings, esms_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(LATE)
    c = contact(session)
    consent(session, c, "sms")
    m = message(session, c, "sms")
    session.commit()
    result = deliver_batch(session, [m.id])
    session.refresh(m)
    assert result.deferred == [m.id] and m.status == "deferred"
    assert m.not_before == datetime(2026, 11, 3, 0, 0, tzinfo=UTC)  # 07:00 ICT
    assert esms_server.hits == []
    # not due yet: a second delivery does nothing
    assert deliver_batch(session, [m.id]).sent == []
    frozen_clock.set(datetime(2026, 11, 3, 0, 1, tzinfo=UTC))
    assert deliver_batch(session, [m.id]).sent == [m.id]
    assert len(esms_server.hits) == 1


def test_transactional_sms_goes_out_at_night(
    session: Session, dsettings: Settings, esms_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(LATE)
    c = contact(session)  # no consent rows at all: transactional needs none
    m = message(session, c, "sms", purpose="transactional")
    session.commit()
    assert deliver_batch(session, [m.id]).sent == [m.id]
    assert esms_server.hits[0].body["Content"].startswith("Shop: Lan")


def test_missing_order_context_fails_with_reason(
    session: Session, dsettings: Settings, esms_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(LATE)
    c = contact(session)
    ids = [
        message(session, c, "sms", "t/order", purpose="transactional", step=f"s{i}").id
        for i in range(5)
    ]
    session.commit()
    # order context is missing without a trigger event: the template needs `order`
    result = deliver_batch(session, ids)
    assert result.failed == ids  # strict undefined -> failed with a reason, nothing sent
    assert esms_server.hits == []
    row = session.get(Message, ids[0])
    assert row is not None and "order" in (row.error or "")


def test_frequency_cap_three_per_24h(
    session: Session, dsettings: Settings, esms_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    c = contact(session)
    consent(session, c, "sms")
    first_sent = NOON - timedelta(hours=20)
    for i in range(3):
        message(session, c, "sms", step=f"old{i}", status="sent",
                sent_at=first_sent + timedelta(hours=i))
    m = message(session, c, "sms", step="new")
    t = message(session, c, "sms", step="tx", purpose="transactional",
                template="t/promo")
    session.commit()
    result = deliver_batch(session, [m.id, t.id])
    session.refresh(m)
    assert result.deferred == [m.id] and m.status == "deferred"
    assert m.not_before == first_sent + timedelta(hours=24)
    assert "frequency cap 3/24h" in (m.error or "")
    assert result.sent == [t.id]  # transactional skips the cap
    assert not esms_server.hits[0].body["Content"].startswith("[QC]")


def test_cap_counts_within_one_batch(
    session: Session, dsettings: Settings, esms_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    c = contact(session)
    consent(session, c, "sms")
    ids = [message(session, c, "sms", step=f"s{i}").id for i in range(4)]
    session.commit()
    result = deliver_batch(session, ids)
    assert len(result.sent) == 3 and len(result.deferred) == 1
    assert len(esms_server.hits) == 3


def test_suppression_marketing_vs_transactional(
    session: Session, dsettings: Settings, zns_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    a = contact(session, 1)
    b = contact(session, 2)
    session.add(Suppression(channel="zalo", address=a.phone, reason="unsubscribed"))
    session.add(Suppression(channel="sms", address=b.phone, reason="hard_bounce", scope="all"))
    mk = message(session, a, "zalo_zns", step="m")
    tx = message(session, a, "zalo_zns", step="t", purpose="transactional")
    hard = message(session, b, "sms", step="h", purpose="transactional")
    session.commit()
    result = deliver_batch(session, [mk.id, tx.id, hard.id])
    assert result.skipped == [mk.id]
    assert result.sent == [tx.id]  # an opt-out of marketing does not stop order updates
    assert result.failed == [hard.id]  # never to a hard-bounced address
    assert [h.body["tracking_id"] for h in zns_server.hits] == [str(tx.id)]
    session.refresh(hard)
    assert hard.status == "failed" and "hard_bounce" in (hard.error or "")


def test_decree91_off_with_profile_none(
    session: Session, dsettings: Settings, esms_server: Loopback, frozen_clock: clock.FrozenClock,
    monkeypatch: object,
) -> None:
    from automation.core.config import get_settings

    monkeypatch.setenv("COMPLIANCE_PROFILE", "none")  # type: ignore[attr-defined]
    get_settings.cache_clear()
    frozen_clock.set(LATE)
    c = contact(session)
    m = message(session, c, "sms")
    session.commit()
    assert deliver_batch(session, [m.id]).sent == [m.id]
    assert esms_server.hits[0].body["Content"].startswith("Shop:")


def test_denied_consent_on_one_channel_falls_back_to_a_consented_one(
    session: Session, dsettings: Settings, zns_server: Loopback, esms_server: Loopback,
    frozen_clock: clock.FrozenClock,
) -> None:
    frozen_clock.set(NOON)
    c = contact(session)
    consent(session, c, "zalo", "denied")
    consent(session, c, "sms")
    m = message(session, c, "zalo_zns", fallback=["sms"])
    session.commit()
    result = deliver_batch(session, [m.id])
    assert result.skipped == [m.id] and len(result.fallbacks) == 1
    session.refresh(m)
    fb = session.get(Message, result.fallbacks[0])
    assert m.status == "skipped" and fb is not None and fb.channel == "sms"
    assert deliver_batch(session, [fb.id]).sent == [fb.id]
    assert zns_server.hits == [] and len(esms_server.hits) == 1
