"""Zalo ZNS / OA adapters and OAuth token rotation on a loopback server; ZNS quota pause
and OA rules through the real worker (deliver_batch) against a loopback Zalo."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from admin_cli.main import app
from automation.core import clock
from automation.core.config import get_settings
from automation.core.models import Message, Order
from automation.delivery.channels import close_adapters
from automation.delivery.send import deliver_batch
from channels.base import OutboundMessage
from channels.errors import PermanentError, QuotaExhausted, TransientError
from channels.retry import RetryPolicy
from channels.zalo import ZaloOaChannel, ZaloZnsChannel
from channels.zalo_token import InMemoryTokenStore, OAuthRefresher, StaticToken
from tests.channels.conftest import Reply, ScriptedServer
from tests.delivery.helpers import Loopback, consent, contact, message

NOW = 1_700_000_000.0
ZNS = OutboundMessage(
    id=42,
    channel="zalo_zns",
    to="+84912345678",
    text="",
    template_id="231677",
    template_data={"customer_name": "Nguyễn Văn An", "order_code": "DH001"},
)
OK = {"error": 0, "message": "Success", "data": {"msg_id": "zmsg-1", "sent_time": "1"}}


def refresher(
    server: ScriptedServer,
    client: httpx.Client,
    policy: RetryPolicy,
    expires_at: float = NOW + 3600,
) -> tuple[OAuthRefresher, InMemoryTokenStore]:
    store = InMemoryTokenStore("A1", "R1", expires_at)
    tokens = OAuthRefresher(
        "app-1", "app-secret", store, oauth_base=server.url, client=client, policy=policy,
        clock=lambda: NOW,
    )  # fmt: skip
    return tokens, store


def zns(
    server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> tuple[ZaloZnsChannel, InMemoryTokenStore]:  # noqa: E501
    tokens, store = refresher(server, client, policy)
    return ZaloZnsChannel(tokens, api_base=server.url, client=client, policy=policy), store


def test_zns_success_body_shape(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(200, OK))
    channel, _ = zns(http_server, client, policy)
    assert channel.send(ZNS).provider_message_id == "zmsg-1"
    req = http_server.requests[0]
    assert req.path == "/message/template"
    assert req.headers["access_token"] == "A1"
    assert req.json() == {
        "phone": "84912345678",
        "template_id": "231677",
        "template_data": {"customer_name": "Nguyễn Văn An", "order_code": "DH001"},
        "tracking_id": "42",
    }


@pytest.mark.parametrize("code", [-108, -118])
def test_zns_bad_phone_or_no_account_is_permanent(
    code: int, http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(200, {"error": code, "message": "nope"}))
    channel, _ = zns(http_server, client, policy)
    with pytest.raises(PermanentError) as info:
        channel.send(ZNS)
    assert info.value.code == str(code)


@pytest.mark.parametrize(
    ("code", "error"),
    [(-100, TransientError), (-115, QuotaExhausted), (-101, TransientError),
     (-109, PermanentError), (-111, PermanentError), (-112, PermanentError),
     (-114, PermanentError), (-119, PermanentError)],
)  # fmt: skip
def test_zns_error_table(code: int, error: type[Exception], policy: RetryPolicy) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"error": code}))
    channel = ZaloZnsChannel(
        StaticToken("t"), client=httpx.Client(transport=transport), policy=policy
    )
    with pytest.raises(error) as info:
        channel.send(ZNS)
    assert type(info.value) is error


def test_zns_server_error_is_transient(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(502), Reply(503), Reply(500))
    channel, _ = zns(http_server, client, policy)
    with pytest.raises(TransientError, match="HTTP 500"):
        channel.send(ZNS)


def test_invalid_token_refreshes_rotates_and_retries_once(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(
        Reply(200, {"error": -124, "message": "Access token is invalid"}),
        Reply(200, {"access_token": "A2", "refresh_token": "R2", "expires_in": "90000"}),
        Reply(200, OK),
    )
    channel, store = zns(http_server, client, policy)
    assert channel.send(ZNS).provider_message_id == "zmsg-1"

    first, refresh, retry = http_server.requests
    assert first.headers["access_token"] == "A1"
    assert refresh.path == "/v4/oa/access_token"
    assert refresh.headers["secret_key"] == "app-secret"
    assert refresh.form() == {
        "refresh_token": "R1",
        "app_id": "app-1",
        "grant_type": "refresh_token",
    }
    assert retry.headers["access_token"] == "A2" and retry.json() == first.json()
    assert store.value == ("A2", "R2", NOW + 90000) and store.saves == 1


def test_expired_token_is_refreshed_before_sending(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    tokens, store = refresher(http_server, client, policy, expires_at=NOW - 1)
    http_server.reply(
        Reply(200, {"access_token": "A2", "refresh_token": "R2", "expires_in": 90000}),
        Reply(200, OK),
    )
    ZaloZnsChannel(tokens, api_base=http_server.url, client=client, policy=policy).send(ZNS)
    assert [r.path for r in http_server.requests] == ["/v4/oa/access_token", "/message/template"]
    assert http_server.requests[1].headers["access_token"] == "A2"
    assert store.value[:2] == ("A2", "R2")


def test_failed_refresh_is_transient_and_keeps_the_old_pair(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(
        Reply(200, {"error": -124, "message": "Access token is invalid"}),
        Reply(200, {"error": -14014, "error_name": "Invalid refresh token"}),
    )
    channel, store = zns(http_server, client, policy)
    with pytest.raises(TransientError, match="refresh failed"):
        channel.send(ZNS)
    assert store.value == ("A1", "R1", NOW + 3600) and store.saves == 0


def test_refresh_skipped_when_another_worker_already_rotated(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    tokens, store = refresher(http_server, client, policy)
    store.value = ("A2", "R2", NOW + 3600)  # rotated by another worker
    assert tokens.refresh(stale="A1") == "A2"
    assert http_server.requests == []


def test_static_token_cannot_refresh(policy: RetryPolicy) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"error": -216}))
    channel = ZaloOaChannel(
        StaticToken("t"), client=httpx.Client(transport=transport), policy=policy
    )
    with pytest.raises(TransientError, match="no refresher"):
        channel.send(OutboundMessage(id=1, channel="zalo_oa", to="u1", text="hi"))


def test_zns_without_template_is_refused_without_http(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    channel, _ = zns(http_server, client, policy)
    with pytest.raises(PermanentError, match="template_id"):
        channel.send(OutboundMessage(id=1, channel="zalo_zns", to="+84912345678", text="x"))
    assert http_server.requests == []


def test_oa_text_message(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(200, {"error": 0, "message": "Success",
                                  "data": {"message_id": "oa-9", "user_id": "2512"}}))  # fmt: skip
    tokens, _ = refresher(http_server, client, policy)
    channel = ZaloOaChannel(tokens, api_base=http_server.url, client=client, policy=policy)
    msg = OutboundMessage(
        id=3, channel="zalo_oa", to="2512", text="Chào An, đơn DH001 đã giao", purpose="marketing"
    )
    assert channel.send(msg).provider_message_id == "oa-9"
    req = http_server.requests[0]
    assert req.path == "/v3.0/oa/message/cs" and req.headers["access_token"] == "A1"
    assert req.json() == {"recipient": {"user_id": "2512"},
                          "message": {"text": "Chào An, đơn DH001 đã giao"}}  # fmt: skip


def test_oa_transactional_message_uses_the_transaction_endpoint(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(200, {"error": 0, "message": "Success",
                                  "data": {"message_id": "oa-10", "user_id": "2512"}}))  # fmt: skip
    tokens, _ = refresher(http_server, client, policy)
    channel = ZaloOaChannel(tokens, api_base=http_server.url, client=client, policy=policy)
    text = "Đơn DH001 đã giao\nCảm ơn An đã mua hàng"
    msg = OutboundMessage(id=4, channel="zalo_oa", to="2512", text=text)
    assert channel.send(msg).provider_message_id == "oa-10"
    req = http_server.requests[0]
    assert req.path == "/v3.0/oa/message/transaction"
    payload = req.json()["message"]["attachment"]["payload"]
    assert payload["template_type"] == "transaction_order" and payload["language"] == "VI"
    assert payload["elements"] == [
        {"type": "header", "content": "Đơn DH001 đã giao", "align": "left"},
        {"type": "text", "content": "Cảm ơn An đã mua hàng", "align": "left"},
    ]


def test_oa_user_not_following_is_permanent(policy: RetryPolicy) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"error": -213}))
    channel = ZaloOaChannel(
        StaticToken("t"), client=httpx.Client(transport=transport), policy=policy
    )
    with pytest.raises(PermanentError):
        channel.send(OutboundMessage(id=1, channel="zalo_oa", to="u1", text="hi"))


VN_MORNING = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)  # 10:00 in Ho Chi Minh City
VN_MIDNIGHT = datetime(2026, 11, 2, 17, 0, tzinfo=UTC)  # 00:00 on 3 November there


@pytest.mark.usefixtures("dsettings")
def test_zns_daily_quota_pauses_the_channel_until_midnight_and_the_fallback_goes(
    session: Session,
    zns_server: Loopback,
    frozen_clock: clock.FrozenClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DELIVERY_CONCURRENCY", "1")  # one call at a time: the pause is seen
    get_settings.cache_clear()
    close_adapters()
    frozen_clock.set(VN_MORNING)
    people = [contact(session, n) for n in (1, 2, 3, 4)]
    consent(session, people[0], "sms")
    with_fallback = message(session, people[0], "zalo_zns", fallback=["sms"])
    waiting = [message(session, c, "zalo_zns") for c in people[1:3]]
    session.commit()
    zns_server.scripted.append((200, {"error": -115, "message": "Out of quota"}))

    result = deliver_batch(session, [with_fallback.id, *(m.id for m in waiting)])

    assert len(zns_server.hits) == 1  # the other two never reached Zalo
    assert result.skipped == [with_fallback.id] and len(result.fallbacks) == 1
    assert result.deferred == [m.id for m in waiting] and result.retry == []
    session.expire_all()
    assert "zalo_zns paused until 2026-11-02 17:00 UTC" in (with_fallback.error or "")
    [sms] = session.scalars(select(Message).where(Message.channel == "sms")).all()
    assert (sms.fallback_from_id, sms.status) == (with_fallback.id, "queued")
    for m in waiting:
        assert (m.status, m.not_before) == ("deferred", VN_MIDNIGHT)

    report = json.loads(CliRunner().invoke(app, ["doctor", "--json"]).output)
    [pause] = report["paused"]
    assert pause["channel"] == "zalo_zns" and pause["until"] == VN_MIDNIGHT.isoformat()
    assert "-115" in pause["reason"]

    later = message(session, people[3], "zalo_zns")  # queued during the pause
    session.commit()
    assert deliver_batch(session, [later.id]).deferred == [later.id]
    assert len(zns_server.hits) == 1

    frozen_clock.set(VN_MIDNIGHT)  # quota reset
    assert deliver_batch(session, [m.id for m in waiting]).sent == [m.id for m in waiting]
    assert len(zns_server.hits) == 3
    assert json.loads(CliRunner().invoke(app, ["doctor", "--json"]).output)["paused"] == []


PROMO = """
zalo_zns:
  template_id: "000009"
  tag: 3
  params:
    customer_name: "{{ contact.first_name }}"
sms:
  text: "Shop: uu dai cho ban"
"""


@pytest.mark.usefixtures("dsettings")
def test_promotion_tag_zns_needs_a_prior_order(
    session: Session, zns_server: Loopback, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(VN_MORNING)
    root = Path(get_settings().templates_dir or "")
    (root / "t" / "zpromo.yaml").write_text(PROMO.lstrip(), encoding="utf-8")
    (root / "t" / "zbad.yaml").write_text(PROMO.replace("tag: 3", "tag: 5"), encoding="utf-8")
    lead, buyer = contact(session, 1), contact(session, 2)
    consent(session, lead, "sms")
    session.add(Order(source="shopify", external_id="1001", contact_id=buyer.id,
                      status="paid", total=250000, placed_at=VN_MORNING))  # fmt: skip
    to_lead = message(session, lead, "zalo_zns", "t/zpromo", fallback=["sms"])
    to_buyer = message(session, buyer, "zalo_zns", "t/zpromo")
    session.commit()

    result = deliver_batch(session, [to_lead.id, to_buyer.id])

    assert result.sent == [to_buyer.id] and result.skipped == [to_lead.id]
    assert [h.body["template_id"] for h in zns_server.hits] == ["000009"]
    session.expire_all()
    assert to_lead.status == "skipped"
    assert "tag 3 (promotion)" in (to_lead.error or "") and "no order" in (to_lead.error or "")
    [sms] = session.scalars(select(Message).where(Message.channel == "sms")).all()
    assert sms.fallback_from_id == to_lead.id

    checked = CliRunner().invoke(app, ["templates", "validate", "t/zbad", "--json"])
    assert checked.exit_code != 0
    assert "zalo_zns.tag: 5 is not a ZNS tag; use 1 (transaction)" in checked.output


@pytest.mark.usefixtures("dsettings")
def test_oa_minus_230_is_permanent_for_the_contact_until_they_write_again(
    session: Session, monkeypatch: pytest.MonkeyPatch, frozen_clock: clock.FrozenClock
) -> None:
    frozen_clock.set(VN_MORNING)
    answers = [{"error": -230, "message": "User has not interacted with the OA in 7 days"}]
    oa = Loopback(lambda body: (200, answers.pop(0) if answers else
                                {"error": 0, "data": {"message_id": "oa-ok"}}))  # fmt: skip
    try:
        monkeypatch.setenv("ZALO_OA_API_BASE", oa.url)
        root = Path(get_settings().templates_dir or "")
        (root / "t" / "oa.yaml").write_text('zalo_oa:\n  text: "Chào bạn"\n', "utf-8")
        get_settings.cache_clear()
        close_adapters()
        person = contact(session, zalo_user_id="2512")
        first = message(session, person, "zalo_oa", "t/oa", step="s1")
        session.commit()
        assert deliver_batch(session, [first.id]).failed == [first.id]
        session.expire_all()
        assert "no interaction with the OA in 7 days" in (first.error or "")

        second = message(session, person, "zalo_oa", "t/oa", step="s2")
        update = message(session, person, "zalo_oa", "t/oa", purpose="transactional", step="s3")
        session.commit()
        result = deliver_batch(session, [second.id, update.id])
        assert result.skipped == [second.id] and result.sent == [update.id]
        session.expire_all()
        assert f"Zalo -230 on message {first.id}" in (second.error or "")
        assert [h.path for h in oa.hits] == ["/v3.0/oa/message/cs", "/v3.0/oa/message/transaction"]

        frozen_clock.set(VN_MORNING.replace(hour=5))  # they write to the OA two hours later
        person.last_inbound_at = {"zalo": frozen_clock.now().isoformat()}
        third = message(session, person, "zalo_oa", "t/oa", step="s4")
        session.commit()
        assert deliver_batch(session, [third.id]).sent == [third.id]
        assert oa.hits[-1].path == "/v3.0/oa/message/cs"
    finally:
        oa.close()
        close_adapters()
