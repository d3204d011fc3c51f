"""The identity rule and consent evidence through the real HTTP app (native events)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.contacts.consent import history
from automation.core.config import Settings
from automation.core.models import Consent, Contact
from automation.ingest.app import create_app
from tests.ingest.helpers import native_event, post_native


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The real app over ASGI, on the test backend."""
    with TestClient(create_app()) as test_client:
        yield test_client


def test_family_phone_through_the_webhook(client: TestClient, session: Session) -> None:
    minh = {
        "email": "minh@example.vn",
        "phone": "0912 345 678",
        "first_name": "Minh",
        "consent": {"sms": {"marketing": False}},
    }
    mai = {
        "email": "mai@example.vn",
        "phone": "0912345678",
        "first_name": "Mai",
        "consent": {"sms": {"marketing": True}},
        "consent_method": "web_form",
    }
    for id_, who in (("lead-minh", minh), ("lead-mai", mai)):
        event = native_event(id_, "lead.captured", who, {"form": "dang-ky-v3"})
        response = post_native(client, event)
        assert response.status_code == 202, response.text
    people = {c.first_name: c for c in session.scalars(select(Contact))}
    assert set(people) == {"Minh", "Mai"}
    assert people["Minh"].email == "minh@example.vn"
    assert people["Mai"].phone == people["Minh"].phone == "+84912345678"
    states = {(c.contact_id, c.status) for c in session.scalars(select(Consent))}
    assert states == {(people["Minh"].id, "denied"), (people["Mai"].id, "granted")}
    [record] = history(session, people["Mai"].id)
    assert (record.method, record.form, record.source) == ("web_form", "form dang-ky-v3", "native")
    assert record.given_at == datetime(2026, 11, 2, 3, 0, tzinfo=UTC)  # the event's time
    [refusal] = history(session, people["Minh"].id)
    assert (refusal.status, refusal.method) == ("denied", "source_report")


def test_consent_evidence_fields_are_checked(client: TestClient, session: Session) -> None:
    who = {"email": "lan@example.vn", "consent_method": "x" * 65}
    response = post_native(client, native_event("bad-1", "lead.captured", who))
    assert response.status_code == 422
    assert "consent_method" in response.text
    assert session.scalars(select(Contact)).first() is None
