"""Provider callbacks parsed into neutral CallbackResult records (pure: no database, no HTTP)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from channels import esms, facebook, mailgun, twilio, zalo
from channels.callback import IGNORED, MESSAGE_ID, CallbackRejected, CallbackRequest


def request(body: bytes = b"", headers: dict[str, str] | None = None) -> CallbackRequest:
    return CallbackRequest("https://hooks.example.vn/callbacks/x", {}, headers or {}, body)


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        ({"SendStatus": "5", "SendSuccess": "1"}, "delivered"),
        ({"SendStatus": "5", "SendFailed": "2", "SendSuccess": "0"}, "failed"),
        ({"SendStatus": "4"}, "failed"),
        ({"SendStatus": "5"}, "sent"),
        ({"SendStatus": "7"}, "pending"),
    ],
)
def test_esms_report_kinds(query: dict[str, str], kind: str) -> None:
    [result] = esms.parse_callback(9, {"SMSID": "abc", **query})
    assert (result.kind, result.message_ids) == (kind, ("9",))
    assert result.event_id.startswith("abc:9:")
    assert ("reason" in result.payload) == (kind == "failed")


def test_twilio_bad_number_bounces_and_opt_out_unsubscribes() -> None:
    [bounce] = twilio.parse_callback(
        {"MessageSid": "SM1", "MessageStatus": "undelivered", "ErrorCode": "30006"}, "5"
    )
    assert (bounce.kind, bounce.suppress, bounce.unsubscribe) == (
        "bounced",
        ("hard_bounce", "all"),
        None,
    )
    assert (bounce.message_ids, bounce.provider_ids) == (("5",), ("SM1",))
    [opt_out] = twilio.parse_callback(
        {"MessageSid": "SM2", "MessageStatus": "failed", "ErrorCode": "21610"}, None
    )
    assert (opt_out.kind, opt_out.suppress, opt_out.unsubscribe) == ("failed", None, "twilio")
    assert opt_out.message_ids == ()


def test_twilio_unsigned_or_non_utf8_form_is_rejected() -> None:
    with pytest.raises(CallbackRejected) as missing:
        twilio.read_callback(request(b"MessageSid=SM1"), "token")
    assert (missing.value.status, missing.value.error) == (401, "missing_signature")
    with pytest.raises(CallbackRejected) as binary:
        twilio.read_callback(request(b"\xff\xfe", {"x-twilio-signature": "x"}), "token")
    assert (binary.value.status, binary.value.error) == (400, "invalid_form")


def test_zalo_events_delivered_seen_reply_and_unknown() -> None:
    [delivered] = zalo.parse_callback(
        {
            "event_name": "user_received_message",
            "timestamp": "1602560967477",
            "message": {"tracking_id": "12", "msg_id": ""},
        }
    )
    assert delivered.event_id == f"{MESSAGE_ID}:user_received_message"
    assert (delivered.message_ids, delivered.provider_ids) == (("12",), ())
    assert delivered.at == datetime.fromtimestamp(1602560967.477, UTC)
    seen = zalo.parse_callback(
        {"event_name": "user_seen_message", "message": {"msg_ids": ["a", "b"]}}
    )
    assert [(r.kind, r.provider_ids) for r in seen] == [("read", ("a",)), ("read", ("b",))]
    [reply] = zalo.parse_callback(
        {"event_name": "user_send_text", "sender": {"id": "u1"}, "message": {"msg_id": "m9"}}
    )
    assert (reply.kind, reply.user_id, reply.channels, reply.event_id) == (
        "replied",
        "u1",
        ("zalo_oa",),
        "reply:m9",
    )
    assert [r.kind for r in zalo.parse_callback({"event_name": "follow"})] == [IGNORED]


def test_zalo_signature_with_and_without_mac_prefix() -> None:
    body = json.dumps({"event_name": "follow", "timestamp": "1"}).encode()
    mac = zalo.zalo_signature("app", body, "1", "secret")
    for given in (mac, f"mac={mac}"):
        assert zalo.read_callback(request(body), given, "app", "secret")[0].kind == IGNORED
    with pytest.raises(CallbackRejected) as wrong:
        zalo.read_callback(request(body), mac, "app", "other-secret")
    assert wrong.value.status == 401


def test_facebook_delivery_by_mids_or_watermark_read_and_echo() -> None:
    def entry(item: dict[str, object]) -> dict[str, object]:
        return {"object": "page", "entry": [{"messaging": [{"sender": {"id": "p1"}, **item}]}]}

    [by_mid] = facebook.parse_callback(entry({"delivery": {"mids": ["m1", "m2"]}}))
    assert (by_mid.provider_ids, by_mid.every_id, by_mid.user_id) == (("m1", "m2"), True, None)
    [by_mark] = facebook.parse_callback(entry({"delivery": {"watermark": 1700000000000}}))
    assert by_mark.user_id == "p1" and by_mark.sent_before == datetime.fromtimestamp(
        1700000000, UTC
    )
    [read] = facebook.parse_callback(entry({"read": {"watermark": 1700000000000}}))
    assert (read.kind, read.event_id, read.channels) == (
        "read",
        f"read:{MESSAGE_ID}",
        ("messenger",),
    )
    [echo] = facebook.parse_callback(entry({"message": {"mid": "x", "is_echo": True}}))
    assert echo.kind == IGNORED


def test_facebook_subscription_check() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "v", "hub.challenge": "42"}
    check = CallbackRequest("u", query, {})
    assert facebook.subscription_challenge(check, "v") == "42"
    for token in ("other", None):
        with pytest.raises(CallbackRejected) as refused:
            facebook.subscription_challenge(check, token)
        assert refused.value.status == 403


def test_mailgun_lookup_order_and_actions() -> None:
    def event(**fields: object) -> dict[str, object]:
        return {"signature": {"token": "tok"}, "event-data": fields}

    [ours] = mailgun.parse_callback(
        event(
            event="complained",
            recipient="a@example.com",
            **{"user-variables": {"message_id": "7"}},
            message={"headers": {"message-id": "<msg-8@shop.vn>"}},
        )
    )
    assert (ours.message_ids, ours.provider_ids, ours.event_id) == (("7", "8"), (), "tok")
    assert (ours.suppress, ours.unsubscribe, ours.address) == (
        ("complaint", "marketing"),
        "mailgun_complaint",
        "a@example.com",
    )
    [theirs] = mailgun.parse_callback(
        event(
            id="e1",
            event="failed",
            severity="permanent",
            message={"headers": {"message-id": "x@mg"}},
        )
    )
    assert (theirs.kind, theirs.suppress) == ("bounced", ("hard_bounce", "all"))
    assert (theirs.message_ids, theirs.provider_ids) == ((), ("x@mg", "<x@mg>"))
    [temporary] = mailgun.parse_callback(event(id="e2", event="failed", severity="temporary"))
    assert (temporary.kind, temporary.suppress) == ("temporary_failure", None)


def test_mailgun_without_signature_block_is_401() -> None:
    for body in (b"not json", b'{"event-data": {}}'):
        with pytest.raises(CallbackRejected) as rejected:
            mailgun.read_callback(request(body), "key")
        assert (rejected.value.status, rejected.value.error) == (401, "missing_signature")
