"""POST /callbacks/sendgrid: ECDSA-signed event batches (SendGrid's own sample, signed here)."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core.config import Settings, get_settings
from automation.core.models import Consent, Event, Message, MessageEvent, Suppression
from tests.feedback.conftest import build_app

KEY = ec.generate_private_key(ec.SECP256R1())
PUBLIC = base64.b64encode(
    KEY.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
).decode()
STAMP = "1700000000"


def sign(body: bytes, key: ec.EllipticCurvePrivateKey = KEY, stamp: str = STAMP) -> dict[str, str]:
    """The two signature headers SendGrid sends for ``body``."""
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
        "Content-Type": "application/json",
    }


def count(session: Session, model: Any) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.fixture
def sg_client(cb_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", PUBLIC)
    get_settings.cache_clear()
    with TestClient(build_app()) as test_client:
        yield test_client
    get_settings.cache_clear()


def sample(fixture_bytes: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = json.loads(fixture_bytes("sendgrid/events.json"))
    return events


def post(client: TestClient, events: list[dict[str, Any]]) -> Any:
    body = json.dumps(events).encode()
    return client.post("/callbacks/sendgrid", content=body, headers=sign(body))


@pytest.mark.parametrize(
    ("event", "kind", "status"),
    [("delivered", "delivered", "delivered"), ("open", "opened", "opened"),
     ("click", "clicked", "clicked"), ("bounce", "bounced", "bounced"),
     ("dropped", "failed", "failed"), ("spamreport", "complained", "complained"),
     ("unsubscribe", "unsubscribed", "sent"), ("deferred", "temporary_failure", "sent")],
)  # fmt: skip
def test_each_event_maps_to_our_result(
    event: str,
    kind: str,
    status: str,
    sg_client: TestClient,
    session: Session,
    make_message: Any,
    fixture_bytes: Any,
) -> None:
    msg = make_message(address="example@test.com", email="example@test.com")
    [item] = [e for e in sample(fixture_bytes) if e["event"] == event]
    item["smtp-id"] = f"<msg-{msg.id}@shop.example.vn>"  # our Message-ID, as we send it
    response = post(sg_client, [item])
    assert response.status_code == 200, response.text
    assert response.json()["applied"] == 1
    session.expire_all()
    assert session.get(Message, msg.id).status == status  # type: ignore[union-attr]
    assert session.scalars(select(MessageEvent.type)).all() == [kind]
    suppressions = {(s.reason, s.scope) for s in session.scalars(select(Suppression))}
    expected = {
        "bounce": {("hard_bounce", "all")},
        "dropped": {("hard_bounce", "all")},  # the sample's reason is "Bounced Address"
        "spamreport": {("complaint", "marketing")},
        "unsubscribe": {("unsubscribed", "marketing")},  # the opt-out itself
    }.get(event, set())
    assert suppressions == expected
    denied = session.scalars(select(Consent).where(Consent.status == "denied")).all()
    assert bool(denied) == (event in ("spamreport", "unsubscribe"))
    if event == "click":
        clicked = session.scalars(select(Event).where(Event.type == "message.clicked")).one()
        assert clicked.payload["properties"]["url"] == "http://www.sendgrid.com/"


def test_whole_sample_batch_once_and_redelivery_is_deduplicated(
    sg_client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    msg = make_message(
        address="example@test.com", email="example@test.com", provider_message_id="sg_message_id"
    )
    events = sample(fixture_bytes)
    first = post(sg_client, events)
    assert first.status_code == 200, first.text
    # processed and group_resubscribe are not results of ours
    assert first.json() == {"status": "ok", "applied": 9, "duplicates": 0, "ignored": 2}
    again = post(sg_client, events)
    assert again.json() == {"status": "ok", "applied": 0, "duplicates": 9, "ignored": 2}
    session.expire_all()
    # the sample bounces, drops, then reports spam for one message: the complaint wins
    assert session.get(Message, msg.id).status == "complained"  # type: ignore[union-attr]
    assert count(session, MessageEvent) == 9
    [sup] = session.scalars(select(Suppression)).all()  # one row per address: the strongest
    assert (sup.address, sup.reason, sup.scope) == ("example@test.com", "hard_bounce", "all")


def test_bad_or_missing_signature_stores_nothing(
    sg_client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    make_message(address="example@test.com", provider_message_id="sg_message_id")
    body = json.dumps(sample(fixture_bytes)).encode()
    other = ec.generate_private_key(ec.SECP256R1())
    tampered = body.replace(b'"delivered"', b'"bounce"', 1)
    attempts = [
        (body, {"Content-Type": "application/json"}),  # unsigned
        (body, sign(body, key=other)),  # someone else's key
        (tampered, sign(body)),  # signature of another body
        (body, {**sign(body), "X-Twilio-Email-Event-Webhook-Timestamp": "1700000001"}),
        (body, {**sign(body), "X-Twilio-Email-Event-Webhook-Signature": "bm90IGEgc2ln"}),
    ]
    for content, headers in attempts:
        response = sg_client.post("/callbacks/sendgrid", content=content, headers=headers)
        assert response.status_code == 401, response.text
        assert "error" in response.json()
    assert count(session, MessageEvent) == 0 and count(session, Event) == 0
    signed_object = json.dumps({"event": "delivered"}).encode()
    response = sg_client.post(
        "/callbacks/sendgrid", content=signed_object, headers=sign(signed_object)
    )
    assert response.status_code == 400 and "JSON array" in response.json()["message"]


def test_bad_public_key_setting_is_named(
    cb_settings: Settings, monkeypatch: pytest.MonkeyPatch, fixture_bytes: Any
) -> None:
    monkeypatch.setenv("SENDGRID_WEBHOOK_PUBLIC_KEY", "not-a-key")
    get_settings.cache_clear()
    body = json.dumps(sample(fixture_bytes)).encode()
    with TestClient(build_app()) as client:
        response = client.post("/callbacks/sendgrid", content=body, headers=sign(body))
    get_settings.cache_clear()
    assert response.status_code == 401
    assert "SENDGRID_WEBHOOK_PUBLIC_KEY" in response.json()["message"]
