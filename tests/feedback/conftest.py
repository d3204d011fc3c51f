"""Fixtures shared by the callback and tracking tests: secrets, an app client, message rows."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from automation.core.config import Settings, get_settings
from automation.core.models import Contact, Message

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CALLBACK_SECRETS = {
    "MAILGUN_SIGNING_KEY": "TEST_WEBHOOK_SIGNING_KEY",
    "TWILIO_AUTH_TOKEN": "twilio-test-token",
    "ZALO_APP_ID": "2074138120372622546",
    "ZALO_OA_SECRET": "zalo-oa-test-secret",
    "FACEBOOK_APP_SECRET": "facebook-app-test-secret",
    "FACEBOOK_VERIFY_TOKEN": "facebook-verify-test-token",
    "PUBLIC_BASE_URL": "https://hooks.example.vn",
}


def build_app() -> FastAPI:
    """The real app (create_app), with our routers added if it does not mount them yet."""
    import importlib

    try:
        from automation.ingest.app import create_app
    except ImportError:
        app = FastAPI()
    else:
        app = create_app()
    paths = {getattr(route, "path", "") for route in app.routes}
    for name, probe in (("callbacks", "/callbacks/mailgun"), ("tracking", "/t/o/{token}")):
        if probe in paths:
            continue
        try:
            module = importlib.import_module(f"automation.ingest.{name}")
        except ImportError:
            continue
        app.include_router(module.router)
    return app


@pytest.fixture
def cb_settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings with every provider callback secret set."""
    for key, value in CALLBACK_SECRETS.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    return get_settings()


@pytest.fixture
def client(cb_settings: Settings) -> Iterator[TestClient]:
    """HTTP client on the app, with callback secrets configured."""
    with TestClient(build_app()) as test_client:
        yield test_client


def _make_message(
    session: Session,
    channel: str = "email",
    address: str | None = None,
    status: str = "sent",
    provider_message_id: str | None = None,
    purpose: str = "marketing",
    sent_at: datetime | None = None,
    contact: Contact | None = None,
    step_key: str = "step-1",
    **contact_fields: Any,
) -> Message:
    """A committed contact (unless given) and one outbox message to it."""
    if contact is None:
        contact = Contact(attributes={}, tags=[], last_inbound_at={}, **contact_fields)
        session.add(contact)
        session.flush()
    message = Message(
        step_key=step_key,
        contact_id=contact.id,
        channel=channel,
        purpose=purpose,
        template="welcome",
        address=address,
        status=status,
        provider_message_id=provider_message_id,
        sent_at=sent_at,
        rendered={},
        links={},
        fallback=[],
    )
    session.add(message)
    session.commit()
    return message


@pytest.fixture
def make_message(session: Session) -> Callable[..., Message]:
    """Factory: make_message(channel=..., address=..., provider_message_id=..., ...)."""

    def make(**kwargs: Any) -> Message:
        return _make_message(session, **kwargs)

    return make


@pytest.fixture
def fixture_bytes() -> Callable[[str], bytes]:
    """Raw bytes of a vendor payload under tests/fixtures/."""

    def read(name: str) -> bytes:
        return (FIXTURES / name).read_bytes()

    return read


@pytest.fixture
def app_factory() -> Callable[[], FastAPI]:
    """build_app, for tests that run their own server."""
    return build_app
