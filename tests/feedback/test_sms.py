"""eSMS (GET with a per-message token) and Twilio (X-Twilio-Signature) status callbacks."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core.config import get_settings
from automation.core.models import Consent, Event, Message, MessageEvent, Suppression
from automation.delivery.providers import esms, twilio
from channels.twilio import twilio_signature

TOKEN = "twilio-test-token"


def esms_sample(fixture_bytes: Any, heading: str) -> str:
    lines = fixture_bytes("esms/callback_all.txt").decode().splitlines()
    index = next(i for i, line in enumerate(lines) if heading in line)
    return lines[index + 1]


def status(session: Session, message_id: int) -> str:
    session.expire_all()
    message = session.get(Message, message_id)
    assert message is not None
    return message.status


def test_esms_callback_delivered_and_failed(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    ok = make_message(channel="sms", address="+84901888484", phone="+84901888484")
    url = urlsplit(esms.callback_url(ok.id, get_settings()))
    assert url.geturl().startswith("https://hooks.example.vn/callbacks/esms/")
    viber = esms_sample(fixture_bytes, "Viber")  # SendStatus=5, SendSuccess=1
    response = client.get(f"{url.path}?{viber}")
    assert response.status_code == 200 and response.json()["applied"] == 1
    assert client.get(f"{url.path}?{viber}").json()["duplicates"] == 1  # eSMS retries
    assert status(session, ok.id) == "delivered"

    bad = make_message(channel="sms", address="+84901888485", phone="+84901888485")
    care = fixture_bytes("esms/callback.txt").decode().strip()  # SendSuccess=0, SendFailed=2
    path = urlsplit(esms.callback_url(bad.id, get_settings())).path
    assert client.get(f"{path}?{care}").status_code == 200
    assert status(session, bad.id) == "failed"
    rows = session.scalars(select(MessageEvent).order_by(MessageEvent.id)).all()
    assert [(r.message_id, r.type, r.provider) for r in rows] == [
        (ok.id, "delivered", "esms"), (bad.id, "failed", "esms")
    ]
    assert rows[0].payload["SMSID"] == dict(parse_qsl(viber))["SMSID"]
    assert sorted(session.scalars(select(Event.type))) == ["message.delivered", "message.failed"]


def test_esms_wrong_token_is_rejected(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    msg = make_message(channel="sms", address="+84901888484")
    other = make_message(channel="sms", address="+84901888486", step_key="s2")
    query = fixture_bytes("esms/callback.txt").decode().strip()
    stolen = urlsplit(esms.callback_url(other.id, get_settings())).path.rsplit("/", 1)[1]
    for path in (
        f"/callbacks/esms/{msg.id}/{stolen}",  # another message's token
        f"/callbacks/esms/{msg.id}/{'0' * 32}",
    ):
        assert client.get(f"{path}?{query}").status_code == 401
    assert client.get(f"/callbacks/esms?{query}").status_code in (404, 405)
    not_an_id = client.get(f"/callbacks/esms/x{msg.id}/{stolen}?{query}")
    assert not_an_id.status_code == 422 and not_an_id.json()["error"] == "invalid_path"
    assert session.scalar(select(func.count()).select_from(MessageEvent)) == 0
    assert status(session, msg.id) == "sent"


def signed_post(client: TestClient, path: str, params: list[tuple[str, str]]) -> Any:
    url = "https://hooks.example.vn" + path
    return client.post(
        path,
        data=dict(params),
        headers={"X-Twilio-Signature": twilio_signature(TOKEN, url, params)},
    )


def test_twilio_status_callback(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    sid = "SM1342fe1b2c904d1ab04f0fc7a58abca9"
    msg = make_message(channel="sms", address="+15017250604", provider_message_id=sid,
                       status="sending")
    params = parse_qsl(fixture_bytes("twilio/status_callback.txt").decode())
    response = signed_post(client, "/callbacks/twilio", params)
    assert response.status_code == 200, response.text
    assert status(session, msg.id) == "sent"
    delivered = [(k, "delivered" if k in ("MessageStatus", "SmsStatus") else v) for k, v in params]
    assert signed_post(client, "/callbacks/twilio", delivered).json()["applied"] == 1
    assert signed_post(client, "/callbacks/twilio", delivered).json()["duplicates"] == 1
    assert status(session, msg.id) == "delivered"
    assert sorted(session.scalars(select(Event.type))) == ["message.delivered", "message.sent"]


def test_twilio_url_with_message_id_and_opt_out(
    client: TestClient, session: Session, make_message: Any
) -> None:
    msg = make_message(channel="sms", address="+84912345678", phone="+84912345678")
    path = urlsplit(twilio.callback_url(msg.id, get_settings())).path + "?" + urlsplit(
        twilio.callback_url(msg.id, get_settings())
    ).query
    params = [("MessageSid", "SMunknown"), ("MessageStatus", "undelivered"), ("ErrorCode", "21610")]
    assert signed_post(client, path, params).status_code == 200
    assert status(session, msg.id) == "failed"
    consent = session.scalars(select(Consent)).one()
    assert (consent.channel, consent.status) == ("sms", "denied")
    sup = session.scalars(select(Suppression)).one()
    assert (sup.channel, sup.address, sup.reason) == ("sms", "+84912345678", "unsubscribed")
    assert "contact.unsubscribed" in session.scalars(select(Event.type)).all()


def test_twilio_rejects_bad_signatures(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    make_message(channel="sms", provider_message_id="SM1342fe1b2c904d1ab04f0fc7a58abca9")
    params = parse_qsl(fixture_bytes("twilio/status_callback.txt").decode())
    assert client.post("/callbacks/twilio", data=dict(params)).status_code == 401
    signed_for_other_url = twilio_signature(TOKEN, "https://evil.example/callbacks/twilio", params)
    tampered = [(k, "delivered" if k == "MessageStatus" else v) for k, v in params]
    good = twilio_signature(TOKEN, "https://hooks.example.vn/callbacks/twilio", params)
    for body, sig in ((params, signed_for_other_url), (tampered, good)):
        response = client.post(
            "/callbacks/twilio", data=dict(body), headers={"X-Twilio-Signature": sig}
        )
        assert response.status_code == 401
    assert session.scalar(select(func.count()).select_from(MessageEvent)) == 0
