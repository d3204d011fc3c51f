"""Click redirect, open pixel and unsubscribe endpoints over HTTP (both backends)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation import links
from automation.core import clock
from automation.core.models import Consent, Contact, Event, Message, MessageEvent, Suppression


def path(url: str) -> str:
    return urlsplit(url).path


def count(session: Session, model: Any) -> int:
    session.expire_all()
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_click_redirects_only_to_recorded_link(
    client: TestClient, session: Session, make_message: Any
) -> None:
    msg = make_message(email="lan@example.vn", address="lan@example.vn")
    msg.links = {"0": "https://shop.example.vn/sale?utm=1", "1": "javascript:alert(1)"}
    session.commit()
    url = links.tracking_url(msg.id, 0)
    response = client.get(path(url), follow_redirects=False)
    assert response.status_code == 302
    assert response.headers["location"] == "https://shop.example.vn/sale?utm=1"
    client.get(path(url), follow_redirects=False)  # same minute: stored once
    session.expire_all()
    assert session.get(Message, msg.id).status == "clicked"  # type: ignore[union-attr]
    assert session.scalars(select(MessageEvent.type)).all() == ["clicked"]
    event = session.scalars(select(Event)).one()
    assert (event.type, event.contact_id) == ("message.clicked", msg.contact_id)
    assert event.payload["properties"]["url"] == "https://shop.example.vn/sale?utm=1"

    token = path(url).rsplit("/", 1)[1]
    forged = [
        token[:-1] + ("A" if token[-1] != "A" else "B"),  # tampered signature
        links.make_token("click", msg.id, 1),  # a link that is not http(s)
        links.make_token("click", msg.id, 7),  # no such link
        links.make_token("open", msg.id),  # token of another kind
        links.make_token("click", msg.id + 999, 0),  # no such message
        "https%3A%2F%2Fevil.example",
    ]
    for bad in forged:
        response = client.get(f"/t/c/{bad}", follow_redirects=False)
        assert response.status_code == 404, bad
        assert "location" not in response.headers
    response = client.get(path(url) + "?url=https://evil.example", follow_redirects=False)
    assert response.headers["location"] == "https://shop.example.vn/sale?utm=1"
    assert count(session, MessageEvent) == 1


def test_open_pixel_dedupes(
    client: TestClient, session: Session, make_message: Any, frozen_clock: clock.FrozenClock
) -> None:
    msg = make_message(status="delivered")
    url = path(links.open_url(msg.id))
    for _ in range(3):
        response = client.get(url)
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
        assert response.content.startswith(b"GIF89a") and "no-store" in response.headers[
            "cache-control"
        ]
    frozen_clock.advance(timedelta(hours=2))
    client.get(url)
    assert count(session, MessageEvent) == 2  # one stored open per hour
    assert session.scalars(select(Event.type)).all() == ["message.opened"]  # first open only
    assert session.get(Message, msg.id).status == "opened"  # type: ignore[union-attr]
    assert client.get(f"/t/o/{links.make_token('click', msg.id, 0)}").status_code == 404
    assert count(session, MessageEvent) == 2


@pytest.mark.parametrize("content_type", ["form", "multipart"])
def test_one_click_unsubscribe_stops_sending(
    client: TestClient, session: Session, make_message: Any, content_type: str
) -> None:
    msg = make_message(email="Lan@Example.vn", address="lan@example.vn")
    contact = session.get(Contact, msg.contact_id)
    queued = make_message(contact=contact, status="queued", address="lan@example.vn",
                          step_key="s2")
    order = make_message(contact=contact, status="queued", purpose="transactional",
                         step_key="s3")
    sms = make_message(contact=contact, channel="sms", status="queued", step_key="s4")
    url = path(links.unsubscribe_url(msg.id))
    if content_type == "form":
        response = client.post(url, content=b"List-Unsubscribe=One-Click",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    else:
        response = client.post(url, files={"List-Unsubscribe": (None, "One-Click")})
    assert response.status_code == 200 and "<html" not in response.text
    session.expire_all()
    consent = session.scalars(select(Consent)).one()
    assert (consent.channel, consent.purpose, consent.status, consent.source) == (
        "email", "marketing", "denied", "list_unsubscribe_one_click"
    )
    sup = session.scalars(select(Suppression)).one()
    assert (sup.channel, sup.address, sup.reason, sup.scope) == (
        "email", "lan@example.vn", "unsubscribed", "marketing"
    )
    statuses = {m.id: m.status for m in session.scalars(select(Message))}
    assert statuses[queued.id] == "skipped"  # marketing email stops at once
    assert statuses[order.id] == "queued"  # transactional still goes
    assert statuses[sms.id] == "queued"  # other channels untouched
    events = session.scalars(select(Event)).all()
    assert [(e.type, e.contact_id) for e in events] == [("contact.unsubscribed", msg.contact_id)]
    assert client.post(url, content=b"List-Unsubscribe=One-Click").status_code == 200
    assert count(session, Event) == 1 and count(session, Suppression) == 1


def test_unsubscribe_page_get_changes_nothing_and_rejects_forgery(
    client: TestClient, session: Session, make_message: Any
) -> None:
    msg = make_message(channel="sms", address="+84912345678", phone="+84912345678")
    url = path(links.unsubscribe_url(msg.id))
    page = client.get(url)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "Hủy đăng ký" in page.text and "tin nhắn SMS" in page.text
    assert "+8491****678" in page.text and "+84912345678" not in page.text
    assert count(session, Consent) == 0 and count(session, Suppression) == 0
    bad = url[:-2] + ("xx" if not url.endswith("xx") else "yy")
    assert client.get(bad).status_code == 404
    assert client.post(bad, data={"x": "1"}).status_code == 404
    assert client.post(bad, content=b"List-Unsubscribe=One-Click").status_code == 404
    other_kind = f"/u/{links.make_token('open', msg.id)}"
    assert client.post(other_kind).status_code == 404
    assert count(session, Consent) == 0 and count(session, Event) == 0
    done = client.post(url)
    assert done.status_code == 200 and "hủy đăng ký thành công" in done.text
    session.expire_all()
    assert session.scalars(select(Suppression.address)).all() == ["+84912345678"]
