"""POST /callbacks/mailgun: signature block, status changes, suppressions, dedupe."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core.models import Consent, Contact, Event, Message, MessageEvent, Suppression


def count(session: Session, model: Any) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def payload(fixture_bytes: Callable[[str], bytes], name: str, **event: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture_bytes(f"mailgun/{name}.json"))
    data["event-data"].update(event)
    return data


def test_delivered_updates_status_once(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    msg = make_message(
        address="recipient@example.com",
        provider_message_id="20180812211713.1.DF5966851B4BAA99@example.org",
        email="recipient@example.com",
    )
    body = fixture_bytes("mailgun/delivered.json")
    first = client.post("/callbacks/mailgun", content=body)
    assert first.status_code == 200, first.text
    assert first.json() == {"status": "ok", "applied": 1, "duplicates": 0, "ignored": 0}
    again = client.post("/callbacks/mailgun", content=body)
    assert again.json()["duplicates"] == 1
    session.expire_all()
    assert session.get(Message, msg.id).status == "delivered"  # type: ignore[union-attr]
    rows = session.scalars(select(MessageEvent)).all()
    assert [(r.type, r.provider, r.provider_event_id) for r in rows] == [
        ("delivered", "mailgun", "hTWCTD81RtiDN-...")
    ]
    events = session.scalars(select(Event)).all()
    assert [(e.type, e.contact_id, e.payload["properties"]["message_id"]) for e in events] == [
        ("message.delivered", msg.contact_id, msg.id)
    ]


def test_permanent_failure_bounces_and_suppresses(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    msg = make_message(address="invalid@example.com", email="invalid@example.com")
    data = payload(fixture_bytes, "permanent_fail")
    data["event-data"]["message"]["headers"]["message-id"] = f"msg-{msg.id}@shop.example.vn"
    response = client.post("/callbacks/mailgun", json=data)
    assert response.status_code == 200 and response.json()["applied"] == 1
    session.expire_all()
    stored = session.get(Message, msg.id)
    assert stored is not None and stored.status == "bounced"
    assert stored.error is not None and "5.1.1" in stored.error
    sup = session.scalars(select(Suppression)).one()
    assert (sup.channel, sup.address, sup.reason, sup.scope) == (
        "email", "invalid@example.com", "hard_bounce", "all"
    )
    assert session.scalars(select(Event.type)).all() == ["message.bounced"]
    # a later "delivered" never revives a bounced message
    later = payload(fixture_bytes, "delivered", id="later")
    later["event-data"]["message"]["headers"]["message-id"] = f"msg-{msg.id}@shop.example.vn"
    assert client.post("/callbacks/mailgun", json=later).json()["applied"] == 1
    session.expire_all()
    assert session.get(Message, msg.id).status == "bounced"  # type: ignore[union-attr]


def test_temporary_failure_is_only_an_event(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    msg = make_message(address="invalid@example.com")
    data = payload(fixture_bytes, "permanent_fail", severity="temporary", id="temp-1")
    data["event-data"]["message"]["headers"]["message-id"] = f"msg-{msg.id}@x.vn"
    assert client.post("/callbacks/mailgun", json=data).status_code == 200
    session.expire_all()
    assert session.get(Message, msg.id).status == "sent"  # type: ignore[union-attr]
    assert session.scalars(select(MessageEvent.type)).all() == ["temporary_failure"]
    assert count(session, Suppression) == 0 and count(session, Event) == 0


def test_opened_clicked_complained_unsubscribed(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    msg = make_message(address="recipient@example.com", email="recipient@example.com")
    queued = make_message(
        address="recipient@example.com", status="queued",
        contact=session.get(Contact, msg.contact_id),
        step_key="step-2",
    )

    def send(event: str, **extra: Any) -> None:
        data = payload(fixture_bytes, "delivered", event=event, id=f"ev-{event}", **extra)
        data["event-data"]["user-variables"] = {"message_id": str(msg.id)}
        assert client.post("/callbacks/mailgun", json=data).json()["applied"] == 1

    send("opened")
    send("clicked", url="https://shop.example.vn/p/1")
    session.expire_all()
    assert session.get(Message, msg.id).status == "clicked"  # type: ignore[union-attr]
    send("complained")
    session.expire_all()
    assert session.get(Message, msg.id).status == "complained"  # type: ignore[union-attr]
    sup = session.scalars(select(Suppression)).one()
    assert (sup.reason, sup.scope) == ("complaint", "marketing")
    consent = session.scalars(select(Consent)).one()
    assert (consent.channel, consent.purpose, consent.status) == ("email", "marketing", "denied")
    assert session.get(Message, queued.id).status == "skipped"  # type: ignore[union-attr]
    types = sorted(session.scalars(select(Event.type)).all())
    assert types == [
        "contact.unsubscribed", "message.clicked", "message.complained", "message.opened"
    ]
    clicked = session.scalars(select(Event).where(Event.type == "message.clicked")).one()
    assert clicked.payload["properties"]["url"] == "https://shop.example.vn/p/1"
    send("unsubscribed")  # already opted out: no second contact.unsubscribed
    assert count(session, Event) == 4


def test_rejected_calls_store_nothing(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    make_message(provider_message_id="20180812211713.1.DF5966851B4BAA99@example.org")
    good = json.loads(fixture_bytes("mailgun/delivered.json"))
    forged = json.loads(json.dumps(good))
    forged["signature"]["signature"] = "0" * 64
    unsigned = {"event-data": good["event-data"]}
    other_token = json.loads(json.dumps(good))
    other_token["signature"]["token"] = "f" * 50
    for body in (forged, unsigned, other_token):
        response = client.post("/callbacks/mailgun", json=body)
        assert response.status_code == 401, response.text
        assert "error" in response.json()
    assert client.post("/callbacks/mailgun", content=b"not json").status_code == 401
    assert count(session, MessageEvent) == 0 and count(session, Event) == 0


def test_unknown_message_is_accepted_and_ignored(
    client: TestClient, session: Session, fixture_bytes: Any
) -> None:
    response = client.post("/callbacks/mailgun", content=fixture_bytes("mailgun/delivered.json"))
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "applied": 0, "duplicates": 0, "ignored": 1}
    assert count(session, MessageEvent) == 0
