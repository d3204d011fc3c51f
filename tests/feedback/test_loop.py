"""Results feed back into the contact: late fallback, soft bounces, unsubscribe exits,
reachability in segments and in `mactl contacts show`, dlq replay refusals."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from admin_cli.main import app
from automation.contacts.reachability import mark_unreachable
from automation.core import clock, outbox
from automation.core.config import Settings, get_settings
from automation.core.models import ChannelReachability, Contact, Message, Suppression
from automation.feedback import callbacks
from automation.feedback.results import unsubscribe
from automation.segments import compile_rule, load_rule, matches
from channels import esms, mailgun, twilio
from tests.sequences.helpers import apply_yaml, emit, enrollments

NOON = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)
runner = CliRunner()


def _contact(session: Session, n: int = 1) -> Contact:
    row = Contact(email=f"lan{n}@example.vn", phone=f"+8491234{n:04d}", first_name="Lan")
    session.add(row)
    session.flush()
    return row


def _sent(
    session: Session, contact: Contact, channel: str, fallback: list[str], at: datetime, **kw: str
) -> Message:
    address = contact.phone if channel == "sms" else contact.email
    row = Message(
        step_key=kw.get("step", "s1"),
        contact_id=contact.id,
        channel=channel,
        purpose="transactional",
        template="cart_recovery/reminder",
        address=address,
        status="sent",
        provider=kw.get("provider", "esms"),
        provider_message_id=kw.get("pid"),
        sent_at=at,
        fallback=fallback,
        rendered={},
        links={},
    )
    session.add(row)
    session.flush()
    return row


def _fallbacks(session: Session, message: Message) -> list[Message]:
    return list(session.scalars(select(Message).where(Message.fallback_from_id == message.id)))


def test_esms_failure_within_the_window_sends_the_fallback_once(
    session: Session, settings: Settings, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    c = _contact(session)
    m = _sent(session, c, "sms", ["sms", "email"], NOON - timedelta(minutes=20))
    failed = esms.parse_callback(m.id, {"SMSID": "x1", "SendStatus": "4"})
    outcome = callbacks.apply(session, "esms", failed)
    [fallback] = _fallbacks(session, m)
    assert outcome.fallbacks == [fallback.id]
    assert outbox.pending(session, "messages") == [fallback.id]
    assert (fallback.channel, fallback.status) == ("email", "queued")
    assert fallback.step_key == "s1#fallback:email"
    assert m.status == "failed" and m.rendered["fallback"]["message_id"] == fallback.id
    # a second failure report (another event) for the same message sends nothing more
    again = esms.parse_callback(m.id, {"SMSID": "x1", "SendStatus": "5", "SendFailed": "1"})
    assert callbacks.apply(session, "esms", again).fallbacks == []
    assert len(_fallbacks(session, m)) == 1
    session.commit()


def test_failure_after_the_window_is_only_recorded(
    session: Session, settings: Settings, frozen_clock: clock.FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LATE_FALLBACK_WINDOW_MINUTES", "30")
    get_settings.cache_clear()
    frozen_clock.set(NOON)
    c = _contact(session)
    m = _sent(session, c, "sms", ["email"], NOON - timedelta(minutes=31), provider="twilio",
              pid="SM1")
    undelivered = twilio.parse_callback(
        {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30003"}, None
    )
    outcome = callbacks.apply(session, "twilio", undelivered)
    assert outcome.applied == 1 and outcome.fallbacks == []
    assert m.status == "failed" and _fallbacks(session, m) == []
    session.commit()


def test_mailgun_permanent_failure_triggers_the_fallback(
    session: Session, settings: Settings, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    c = _contact(session)
    m = _sent(session, c, "email", ["sms"], NOON - timedelta(minutes=5), provider="mailgun")
    data = {"event-data": {"event": "failed", "severity": "permanent", "id": "mg1",
                           "recipient": c.email, "user-variables": {"message_id": str(m.id)}}}
    outcome = callbacks.apply(session, "mailgun", mailgun.parse_callback(data))
    [fallback] = _fallbacks(session, m)
    assert fallback.channel == "sms" and outcome.fallbacks == [fallback.id]
    assert m.status == "bounced"
    assert session.scalar(select(Suppression.reason)) == "hard_bounce"
    session.commit()


def test_mailgun_temporary_failures_suppress_after_the_limit(
    session: Session, settings: Settings, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    c = _contact(session)
    for n in range(3):
        m = _sent(session, c, "email", [], NOON, provider="mailgun", step=f"s{n}")
        data = {"event-data": {"event": "failed", "severity": "temporary", "id": f"t{n}",
                               "recipient": c.email, "user-variables": {"message_id": str(m.id)}}}
        callbacks.apply(session, "mailgun", mailgun.parse_callback(data))
        suppressed = session.scalar(select(Suppression))
        assert (suppressed is not None) == (n == 2)
    assert suppressed is not None and suppressed.reason == "soft_bounce"
    session.commit()


MARKETING = """
sequence: nurture
purpose: marketing
trigger: {event: lead.captured}
steps:
  - wait: 1d
  - send: {channel: email, template: t/promo}
  - wait: 1d
  - send: {channel: sms, template: t/promo}
"""
ORDERS = """
sequence: order_status
purpose: transactional
trigger: {event: order.created}
steps:
  - wait: 1d
  - send: {channel: email, template: t/order}
"""


def test_unsubscribe_exits_every_marketing_enrollment_at_once(
    session: Session, settings: Settings, frozen_clock: clock.FrozenClock
) -> None:
    apply_yaml(session, MARKETING)
    apply_yaml(session, ORDERS)
    c = _contact(session)
    session.commit()
    emit(session, "lead.captured", c.id)
    emit(session, "order.created", c.id, {"order_id": "1"})
    nurture, orders = enrollments(session, c.id)
    queued = Message(enrollment_id=nurture.id, step_key="x", contact_id=c.id, channel="sms",
                     purpose="marketing", template="t/promo", status="queued")
    session.add(queued)
    session.flush()
    unsubscribe(session, c, "email", "unsubscribe_page")
    session.commit()
    nurture, orders = enrollments(session, c.id)
    assert (nurture.state, nurture.exit_reason) == ("exited", "unsubscribed")
    assert orders.state in ("active", "waiting") and orders.exit_reason is None
    session.refresh(queued)
    assert (queued.status, queued.error) == ("skipped", "unsubscribed")


def test_reachable_segment_reads_reachability_in_both_evaluators(
    session: Session, settings: Settings
) -> None:
    c, other = _contact(session, 1), _contact(session, 2)
    rule = load_rule({"reachable": "zalo"}, where="test")

    def members() -> tuple[set[int], set[int]]:
        by_sql = set(session.scalars(compile_rule(rule, NOON)))
        by_python = {i for i in (c.id, other.id) if matches(session, rule, i, NOON)}
        return by_sql, by_python

    assert members() == ({c.id, other.id}, {c.id, other.id})
    failed = _sent(session, c, "sms", [], NOON)
    failed.channel = "zalo_zns"
    mark_unreachable(session, failed, "no Zalo account", "-118")
    session.flush()
    assert members() == ({other.id}, {other.id})
    assert load_rule({"reachable": "sms"}, where="t") and matches(
        session, load_rule({"reachable": "sms"}, where="t"), c.id, NOON
    )
    c.phone = "+84912345678"  # a new number: reachable again
    session.flush()
    assert members() == ({c.id, other.id}, {c.id, other.id})


def test_contacts_show_lists_each_channel_state_and_why(
    session: Session, settings: Settings
) -> None:
    c = _contact(session)
    m = _sent(session, c, "sms", [], NOON)
    m.channel = "zalo_zns"
    mark_unreachable(session, m, "no Zalo account (Zalo -118)", "-118")
    session.commit()
    result = runner.invoke(app, ["contacts", "show", str(c.id), "--json"])
    assert result.exit_code == 0, result.output
    states = {s["channel"]: s for s in json.loads(result.output)["channels"]}
    assert states["zalo_zns"]["state"] == "unreachable"
    assert states["zalo_zns"]["reason"] == "no Zalo account (Zalo -118)"
    assert states["sms"]["state"] == "reachable"
    assert states["messenger"] == {**states["messenger"], "state": "unreachable",
                                   "reason": "no facebook_psid"}
    table = runner.invoke(app, ["contacts", "show", str(c.id)], env={"COLUMNS": "120"})
    assert table.exit_code == 0, table.output
    assert "no Zalo account" in table.output and "Channels" in table.output


def test_dlq_replay_refuses_a_step_already_sent_by_fallback(
    session: Session, settings: Settings
) -> None:
    c = _contact(session)
    first = _sent(session, c, "sms", ["email"], NOON)
    first.status = "failed"
    second = _sent(session, c, "email", [], NOON, step="s1#fallback:email")
    second.fallback_from_id, second.status = first.id, "failed"
    third = _sent(session, c, "sms", [], NOON, step="s1#fallback:email#fallback:sms")
    third.fallback_from_id = second.id  # went out: delivered by the second fallback
    lonely = _sent(session, c, "sms", [], NOON, step="s2")
    lonely.status = "failed"
    session.commit()
    result = runner.invoke(app, ["dlq", "replay", str(first.id), str(lonely.id), "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["replayed"] == [lonely.id]
    assert answer["refused"] == {
        str(first.id): f"step already went out by fallback message {third.id} on sms (sent)"
    }
    text = runner.invoke(app, ["dlq", "replay", str(second.id)])
    assert f"refused {second.id}: step already went out by fallback message {third.id}" in (
        text.output.replace("\n", " ")
    )
    session.refresh(first)
    assert first.status == "failed"


def test_a_delivery_marks_the_channel_reachable_again(
    session: Session, settings: Settings, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(NOON)
    c = _contact(session)
    earlier = _sent(session, c, "sms", [], NOON - timedelta(days=1), step="s0")
    mark_unreachable(session, earlier, "invalid phone number", "108")
    later = _sent(session, c, "sms", [], NOON)
    report = esms.parse_callback(later.id, {"SMSID": "x9", "SendStatus": "5", "SendSuccess": "1"})
    callbacks.apply(session, "esms", report)
    session.commit()
    [row] = session.scalars(select(ChannelReachability)).all()
    assert (row.state, row.message_id, row.provider_code) == ("reachable", later.id, None)
    assert row.reason == f"delivered message {later.id}"
