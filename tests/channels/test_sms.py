"""eSMS and Twilio adapters against a loopback server speaking their shapes."""

from __future__ import annotations

import base64

import httpx
import pytest

from channels.base import OutboundMessage
from channels.errors import PermanentError, TransientError
from channels.esms import EsmsChannel
from channels.retry import RetryPolicy
from channels.twilio import TwilioChannel
from tests.channels.conftest import Reply, ScriptedServer

VI = "[QC] Chào An, giảm 20% hôm nay. Từ chối: TC gửi 8079"
MSG = OutboundMessage(
    id=42, channel="sms", to="+84912345678", text=VI, callback_url="https://cb.example/esms?t=s"
)


def esms(server: ScriptedServer, client: httpx.Client, policy: RetryPolicy) -> EsmsChannel:
    return EsmsChannel("KEY", "SECRET", "SHOPAN", api_base=server.url, client=client, policy=policy)


def test_esms_success_body_shape(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(200, {"CodeResult": "100", "SMSID": "abc-1"}))
    result = esms(http_server, client, policy).send(MSG)

    assert result.provider_message_id == "abc-1" and not result.already_sent
    assert result.segments == 1
    req = http_server.requests[0]
    assert req.path == "/SendMultipleMessage_V4_post_json/"
    assert req.json() == {
        "ApiKey": "KEY",
        "SecretKey": "SECRET",
        "Phone": "0912345678",
        "Content": VI,
        "Brandname": "SHOPAN",
        "SmsType": "2",
        "IsUnicode": "1",
        "Sandbox": "0",
        "RequestId": "42",
        "CallbackUrl": "https://cb.example/esms?t=s",
    }


def test_esms_plain_text_is_not_unicode(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(200, {"CodeResult": "100", "SMSID": "x"}))
    msg = OutboundMessage(id=1, channel="sms", to="0912345678", text="Don hang " * 20)
    assert esms(http_server, client, policy).send(msg).segments == 2
    assert http_server.requests[0].json()["IsUnicode"] == "0"
    assert "CallbackUrl" not in http_server.requests[0].json()


def test_esms_duplicate_request_id_is_already_sent(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(200, {"CodeResult": "124", "ErrorMessage": "Duplicate RequestId"}))
    result = esms(http_server, client, policy).send(MSG)
    assert result.already_sent and result.provider_message_id is None


def test_esms_timeout_is_retried_with_the_same_request_id(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(
        Reply(200, {"CodeResult": "100"}, delay=0.8), Reply(200, {"CodeResult": "124"})
    )
    assert esms(http_server, client, policy).send(MSG).already_sent
    assert [r.json()["RequestId"] for r in http_server.requests] == ["42", "42"]


@pytest.mark.parametrize(
    ("code", "error"),
    [("108", PermanentError), ("99", PermanentError), ("146", PermanentError),
     ("101", TransientError), ("103", TransientError), ("104", TransientError),
     ("777", TransientError)],
)  # fmt: skip
def test_esms_error_codes(code: str, error: type[Exception], policy: RetryPolicy) -> None:
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"CodeResult": code}))
    channel = EsmsChannel("K", "S", "B", client=httpx.Client(transport=transport), policy=policy)
    with pytest.raises(error) as info:
        channel.send(MSG)
    assert type(info.value) is error and getattr(info.value, "code", None) == code


def test_esms_permanent_and_auth_failures_over_http(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    channel = esms(http_server, client, policy)
    http_server.reply(Reply(200, {"CodeResult": "108", "ErrorMessage": "Phone invalid"}))
    with pytest.raises(PermanentError, match="108"):
        channel.send(MSG)
    http_server.reply(Reply(200, {"CodeResult": "101", "ErrorMessage": "Authorize Failed"}))
    with pytest.raises(TransientError, match="ApiKey"):
        channel.send(MSG)


def twilio(
    server: ScriptedServer, client: httpx.Client, policy: RetryPolicy, sender: str = "+15005550006"
) -> TwilioChannel:  # noqa: E501
    return TwilioChannel("AC123", "tok", sender, api_base=server.url, client=client, policy=policy)


def test_twilio_success_basic_auth_and_form(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(201, {"sid": "SM1", "status": "queued", "num_segments": "2"}))
    result = twilio(http_server, client, policy).send(MSG)

    assert result.provider_message_id == "SM1" and result.segments == 1
    req = http_server.requests[0]
    assert req.path == "/2010-04-01/Accounts/AC123/Messages.json"
    assert req.headers["authorization"] == "Basic " + base64.b64encode(b"AC123:tok").decode()
    assert req.form() == {
        "To": "+84912345678",
        "From": "+15005550006",
        "Body": VI,
        "StatusCallback": "https://cb.example/esms?t=s",
    }


def test_twilio_messaging_service_sender(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(201, {"sid": "SM2"}))
    twilio(http_server, client, policy, sender="MG999").send(MSG)
    form = http_server.requests[0].form()
    assert form["MessagingServiceSid"] == "MG999" and "From" not in form


def test_twilio_invalid_to_is_permanent(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(400, {"code": 21211, "message": "Invalid 'To'", "status": 400}))
    with pytest.raises(PermanentError) as info:
        twilio(http_server, client, policy).send(MSG)
    assert info.value.code == "21211"


def test_twilio_rate_limited_then_sent(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy, sleeps: list[float]
) -> None:
    http_server.reply(
        Reply(429, {"code": 20429, "message": "Too Many Requests"}, {"Retry-After": "1"}),
        Reply(201, {"sid": "SM3"}),
    )
    assert twilio(http_server, client, policy).send(MSG).provider_message_id == "SM3"
    assert sleeps == [1.0] and len(http_server.requests) == 2


def test_twilio_dropped_connection_is_not_resent(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(drop=True), Reply(201, {"sid": "SM4"}))
    with pytest.raises(TransientError):
        twilio(http_server, client, policy).send(MSG)
    assert len(http_server.requests) == 1


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [(400, 21610, PermanentError), (400, 21614, PermanentError), (400, 21606, PermanentError),
     (401, 20003, TransientError), (404, 20404, TransientError)],
)  # fmt: skip
def test_twilio_error_table(
    status: int, code: int, error: type[Exception], policy: RetryPolicy
) -> None:  # noqa: E501
    body = {"code": code, "message": "m", "status": status}
    transport = httpx.MockTransport(lambda r: httpx.Response(status, json=body))
    channel = TwilioChannel(
        "AC1", "t", "+1", client=httpx.Client(transport=transport), policy=policy
    )
    with pytest.raises(error) as info:
        channel.send(MSG)
    assert type(info.value) is error


# --- advertising (pooled) SMS --------------------------------------------------------

PHONES = [f"+8490{n:07d}" for n in range(30)]


def test_esms_advertising_body_shape(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(Reply(200, {"CodeResult": "100", "CountRegenerate": 0, "SMSID": "ad-7"}))
    result = esms(http_server, client, policy).advertise(
        "[QC] Giam 10% hom nay", PHONES, "7", "https://cb.example/pool/7"
    )
    assert result.provider_message_id == "ad-7" and result.segments == 1
    req = http_server.requests[0]
    assert req.path == "/SendMultipleSMSBrandname_json/"
    assert req.json() == {
        "ApiKey": "KEY",
        "SecretKey": "SECRET",
        "Brandname": "SHOPAN",
        "Content": "[QC] Giam 10% hom nay",
        "Phones": [f"090{n:07d}" for n in range(30)],
        "SmsType": "1",
        "IsUnicode": "0",
        "Sandbox": "0",
        "RequestId": "7",
        "CallbackUrl": "https://cb.example/pool/7",
    }


def test_esms_advertising_below_30_is_permanent_and_duplicate_is_already_sent(
    http_server: ScriptedServer, client: httpx.Client, policy: RetryPolicy
) -> None:
    http_server.reply(
        Reply(200, {"CodeResult": "107", "ErrorMessage": "at least 30 numbers"}),
        Reply(200, {"CodeResult": "124", "ErrorMessage": "Request exist"}),
    )
    adapter = esms(http_server, client, policy)
    with pytest.raises(PermanentError) as failed:
        adapter.advertise("x", PHONES[:29], "8")
    assert failed.value.code == "107"
    assert adapter.advertise("x", PHONES, "8").already_sent


def test_promo_report_maps_to_every_row_or_to_the_named_phone() -> None:
    from channels.esms import parse_pool_callback

    members = {11: "+84900000001", 12: "+84900000002"}
    report = {"SMSID": "ad-7", "SendStatus": "5", "SendSuccess": "2", "TypeId": "1"}
    every = parse_pool_callback(7, members, report)
    assert [(r.kind, r.message_ids) for r in every] == [
        ("delivered", ("11",)),
        ("delivered", ("12",)),
    ]
    assert len({r.event_id for r in every}) == 2
    one = parse_pool_callback(7, members, {**report, "phonenumber": "0900000002"})
    assert [r.message_ids for r in one] == [("12",)]


# --- opt-out wording and the shipped marketing SMS -------------------------------------

MARKETING_SMS = (
    "cart_recovery/reminder",
    "lead_capture/code_reminder",
    "lead_capture/welcome",
    "nurture/offer",
    "winback/offer",
    "winback/reminder",
)


def test_optout_has_diacritics_only_when_the_text_is_ucs2_anyway() -> None:
    from automation.core.config import get_settings
    from automation.messages.compliance import decorate_sms

    settings = get_settings()
    ascii_text = decorate_sms("Giam 10% hom nay", "https://s.vn/u/sms", settings, "SHOP")
    assert ascii_text == "[QC] Giam 10% hom nay Tu choi QC: https://s.vn/u/sms"
    accented = decorate_sms("Giảm 10% hôm nay", "https://s.vn/u/sms", settings, "SHOP")
    assert accented.endswith("Từ chối QC: https://s.vn/u/sms")


@pytest.mark.parametrize("name", MARKETING_SMS)
def test_shipped_marketing_sms_is_one_gsm7_segment_and_pools(name: str) -> None:
    from automation import links
    from automation.core.config import get_settings
    from automation.delivery.pools import optout_url
    from automation.messages.compliance import decorate_sms, personal_variables
    from automation.messages.lookup import load_template
    from automation.messages.render import render
    from automation.messages.rewrite import rewrite_links
    from automation.messages.samples import sample_context
    from channels.segments import count_segments

    settings = get_settings()
    assert personal_variables(load_template(name)["sms"]) == set()
    out = render(name, "sms", sample_context(settings), "vi", settings=settings)
    rewrite_links(out, 0, settings, lambda i: links.pool_click_url(123456, i, settings))
    text = decorate_sms(out.text, optout_url(settings), settings, "SHOP")
    count = count_segments(text)
    # Before: Vietnamese with diacritics + per-message links, 3 UCS-2 parts each.
    assert (count.encoding, count.segments) == ("gsm7", 1), (text, count)
    print(f"{name}: {count.units} septets, {count.segments} part(s)")
