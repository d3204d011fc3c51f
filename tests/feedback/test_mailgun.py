"""POST /callbacks/mailgun: signature block, freshness, replay, status changes, dedupe.

The anymail fixtures carry 2018 timestamps; ``signed`` re-signs a body with a fresh
timestamp and a new token, as Mailgun signs every delivery.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core.models import Consent, Contact, Event, Message, MessageEvent, Suppression
from channels.mailgun import mailgun_signature

KEY = "TEST_WEBHOOK_SIGNING_KEY"
_tokens = itertools.count(1)


def count(session: Session, model: Any) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def signed(data: dict[str, Any], age: float = 0.0, token: str | None = None) -> dict[str, Any]:
    """``data`` with a signature block made now (minus ``age`` seconds) for a new token."""
    stamp = str(int(time.time() - age))
    token = token or f"token-{next(_tokens):04d}-{time.time_ns()}"
    data["signature"] = {
        "timestamp": stamp, "token": token, "signature": mailgun_signature(KEY, stamp, token)
    }
    return data


def payload(fixture_bytes: Callable[[str], bytes], name: str, **event: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(fixture_bytes(f"mailgun/{name}.json"))
    data["event-data"].update(event)
    return signed(data)


def test_delivered_updates_status_once(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    msg = make_message(
        address="recipient@example.com",
        provider_message_id="20180812211713.1.DF5966851B4BAA99@example.org",
        email="recipient@example.com",
    )
    body = json.dumps(payload(fixture_bytes, "delivered")).encode()
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
    good = payload(fixture_bytes, "delivered")
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
    response = client.post("/callbacks/mailgun", json=payload(fixture_bytes, "delivered"))
    assert response.status_code == 200
    assert response.json() == {"status": "ignored", "applied": 0, "duplicates": 0, "ignored": 1}
    assert count(session, MessageEvent) == 0


def test_stale_signature_block_is_refused(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    make_message(provider_message_id="20180812211713.1.DF5966851B4BAA99@example.org")
    captured = client.post("/callbacks/mailgun", content=fixture_bytes("mailgun/delivered.json"))
    assert captured.status_code == 401 and captured.json()["error"] == "stale_signature"
    assert "MAILGUN_MAX_AGE_SECONDS" in captured.json()["message"]
    old = signed(json.loads(fixture_bytes("mailgun/delivered.json")), age=301)
    assert client.post("/callbacks/mailgun", json=old).status_code == 401
    assert count(session, MessageEvent) == 0 and count(session, Event) == 0
    recent = signed(json.loads(fixture_bytes("mailgun/delivered.json")), age=250)
    assert client.post("/callbacks/mailgun", json=recent).json()["applied"] == 1


def test_replayed_block_with_new_event_data_is_refused(
    client: TestClient, session: Session, make_message: Any, fixture_bytes: Any
) -> None:
    """A captured block reused to report a complaint for someone else changes nothing."""
    victim = make_message(address="victim@example.vn", email="victim@example.vn")
    first = payload(fixture_bytes, "delivered")
    assert client.post("/callbacks/mailgun", json=first).status_code == 200
    forged = payload(fixture_bytes, "delivered", event="complained", id="forged-1",
                     recipient="victim@example.vn")  # fmt: skip
    forged["event-data"]["user-variables"] = {"message_id": str(victim.id)}
    forged["signature"] = first["signature"]  # the captured block, still fresh
    response = client.post("/callbacks/mailgun", json=forged)
    assert response.status_code == 403, response.text
    assert response.json()["error"] == "replayed_token"
    assert count(session, Suppression) == 0 and count(session, Consent) == 0
    session.expire_all()
    assert session.get(Message, victim.id).status == "sent"  # type: ignore[union-attr]
    # Mailgun retrying the very same event with its block is still accepted (deduped).
    again = client.post("/callbacks/mailgun", json=first)
    assert again.status_code == 200 and again.json()["status"] == "ignored"
