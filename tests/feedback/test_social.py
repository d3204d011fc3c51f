"""Zalo (X-ZEvent-Signature) and Facebook Messenger (X-Hub-Signature-256) callbacks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core.db import session_factory
from automation.core.models import Contact, Event, Message, MessageEvent
from automation.inbox.worker import map_pending
from channels.facebook import facebook_signature
from channels.zalo import zalo_signature

APP_ID, OA_SECRET = "2074138120372622546", "zalo-oa-test-secret"
FB_SECRET = "facebook-app-test-secret"


def status(session: Session, message_id: int) -> str:
    session.expire_all()
    message = session.get(Message, message_id)
    assert message is not None
    return message.status


def zalo_post(client: TestClient, body: bytes, prefix: str = "") -> Any:
    timestamp = json.loads(body)["timestamp"]
    mac = zalo_signature(APP_ID, body, timestamp, OA_SECRET)
    return client.post(
        "/callbacks/zalo",
        content=body,
        headers={"X-ZEvent-Signature": prefix + mac, "Content-Type": "application/json"},
    )


def apply_stored() -> list[int]:
    """The inbox worker's pass: Zalo callbacks are stored at the answer, applied here."""
    session = session_factory()()
    try:
        return map_pending(session)
    finally:
        session.close()


def test_zalo_received_by_msg_id_and_tracking_id(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    by_msg_id = make_message(channel="zalo_zns", address="+84123456789",
                             provider_message_id="15a0cc0bbb13bd4ce403")
    body = fixture_bytes("zalo/zns_user_received_message.json")
    response = zalo_post(client, body)
    assert response.status_code == 200 and response.json()["status"] == "ok", response.text
    assert zalo_post(client, body, "mac=").json()["duplicate"] is True
    assert status(session, by_msg_id.id) == "sent"  # stored, applied by the inbox worker
    apply_stored()
    assert status(session, by_msg_id.id) == "delivered"

    by_tracking = make_message(channel="zalo_zns", address="+84123456780", step_key="s2")
    data = json.loads(body)
    data["message"].update(msg_id="other-msg", tracking_id=str(by_tracking.id))
    assert zalo_post(client, json.dumps(data).encode(), "mac=").json()["duplicate"] is False
    apply_stored()
    assert status(session, by_tracking.id) == "delivered"
    rows = session.scalars(select(MessageEvent).order_by(MessageEvent.id)).all()
    assert [(r.message_id, r.type, r.provider) for r in rows] == [
        (by_msg_id.id, "delivered", "zalo"), (by_tracking.id, "delivered", "zalo")
    ]
    assert rows[0].occurred_at == datetime.fromtimestamp(1602960467.432, tz=UTC)
    assert session.scalar(select(func.count()).select_from(Event)) == 2


def test_zalo_rejects_unsigned_and_forged(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    msg = make_message(channel="zalo_zns", provider_message_id="15a0cc0bbb13bd4ce403")
    body = fixture_bytes("zalo/zns_user_received_message.json")
    assert client.post("/callbacks/zalo", content=body).status_code == 401
    forged = zalo_signature(APP_ID, body, "1602560967477", "wrong-secret")
    response = client.post("/callbacks/zalo", content=body, headers={"X-ZEvent-Signature": forged})
    assert response.status_code == 401
    other_body = body.replace(b"15a0cc", b"25a0cc")
    good_mac = zalo_signature(APP_ID, body, "1602560967477", OA_SECRET)
    response = client.post(
        "/callbacks/zalo", content=other_body, headers={"X-ZEvent-Signature": good_mac}
    )
    assert response.status_code == 401
    assert session.scalar(select(func.count()).select_from(MessageEvent)) == 0
    assert status(session, msg.id) == "sent"


def envelope(item: dict[str, Any]) -> bytes:
    return json.dumps(
        {"object": "page", "entry": [{"id": "<PAGE_ID>", "time": 1458692752478,
                                      "messaging": [item]}]}
    ).encode()


def fb_post(client: TestClient, body: bytes) -> Any:
    return client.post(
        "/callbacks/facebook", content=body,
        headers={"X-Hub-Signature-256": facebook_signature(FB_SECRET, body)},
    )


def test_facebook_verification(client: TestClient) -> None:
    ok = client.get("/callbacks/facebook", params={
        "hub.mode": "subscribe", "hub.verify_token": "facebook-verify-test-token",
        "hub.challenge": "1158201444"})
    assert ok.status_code == 200 and ok.text == "1158201444"
    bad = client.get("/callbacks/facebook", params={
        "hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"})
    assert bad.status_code == 403 and "1" not in bad.text.split('"')[-1]


def test_facebook_delivery_read_and_reply(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    before = datetime.fromtimestamp(1458668856, tz=UTC)  # before the read watermark
    after = datetime.fromtimestamp(1458668999, tz=UTC)
    first = make_message(channel="messenger", address="<PSID>", facebook_psid="<PSID>",
                         provider_message_id="mid.1458668856218:ed81099e15d3f4f233",
                         sent_at=before)
    contact = session.get(Contact, first.contact_id)
    second = make_message(channel="messenger", address="<PSID>", contact=contact,
                          step_key="s2", sent_at=after)

    delivery = envelope(json.loads(fixture_bytes("facebook/messenger_delivery.json")))
    assert fb_post(client, delivery).json()["applied"] == 1
    assert (status(session, first.id), status(session, second.id)) == ("delivered", "sent")

    read = envelope(json.loads(fixture_bytes("facebook/messenger_read.json")))
    assert fb_post(client, read).json()["applied"] == 1
    assert fb_post(client, read).json()["duplicates"] == 1
    assert (status(session, first.id), status(session, second.id)) == ("read", "sent")

    inbound = envelope(json.loads(fixture_bytes("facebook/messenger_message.json")))
    assert fb_post(client, inbound).json()["applied"] == 1
    assert status(session, second.id) == "replied"
    session.expire_all()
    refreshed = session.get(Contact, first.contact_id)
    assert refreshed is not None
    assert refreshed.last_inbound_at["messenger"] == datetime.fromtimestamp(
        1458692752.478, tz=UTC).isoformat()
    types = sorted(session.scalars(select(Event.type)))
    assert types == ["message.delivered", "message.opened", "message.replied"]
    replied = session.scalars(select(Event).where(Event.type == "message.replied")).one()
    assert replied.contact_id == first.contact_id


def test_facebook_rejects_bad_signature(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    make_message(channel="messenger", facebook_psid="<PSID>",
                 provider_message_id="mid.1458668856218:ed81099e15d3f4f233")
    body = envelope(json.loads(fixture_bytes("facebook/messenger_delivery.json")))
    assert client.post("/callbacks/facebook", content=body).status_code == 401
    wrong = facebook_signature("other-secret", body)
    response = client.post(
        "/callbacks/facebook", content=body, headers={"X-Hub-Signature-256": wrong}
    )
    assert response.status_code == 401
    assert session.scalar(select(func.count()).select_from(MessageEvent)) == 0


def test_zalo_follower_message_opens_window_and_marks_reply(
    client: TestClient, session: Session, make_message: Any
) -> None:
    sent = datetime(2026, 11, 1, 3, 0, tzinfo=UTC)
    msg = make_message(channel="zalo_oa", address="8841236", zalo_user_id="8841236",
                       sent_at=sent)
    data = {"app_id": APP_ID, "event_name": "user_send_text", "timestamp": "1793502000000",
            "sender": {"id": "8841236"}, "recipient": {"id": "oa-1"},
            "message": {"msg_id": "in-1", "text": "Còn hàng không shop?"}}
    body = json.dumps(data, ensure_ascii=False).encode()
    assert zalo_post(client, body).json()["status"] == "ok"
    apply_stored()
    assert status(session, msg.id) == "replied"
    contact = session.get(Contact, msg.contact_id)
    assert contact is not None and contact.last_inbound_at["zalo"] == "2026-11-01T03:00:00+00:00"
    assert session.scalars(select(Event.type)).all() == ["message.replied"]


def test_oversized_body_is_refused(client: TestClient, session: Session) -> None:
    body = b'{"object": "page", "pad": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    response = fb_post(client, body)
    assert response.status_code == 413
    assert session.scalar(select(func.count()).select_from(MessageEvent)) == 0
