"""Schemathesis over the OpenAPI schema: every webhook and callback, signed with the test
secrets, answers no 5xx, no traceback, only the statuses the schema declares, and a
rejected request stores nothing. Bounded (SCHEMATHESIS_EXAMPLES, default 12 per
operation and backend) so it stays well under a minute in CI.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from schemathesis.specs.openapi.checks import status_code_conformance
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core.config import Settings, get_settings
from automation.core.models import Contact, Event, MessageEvent, Suppression
from automation.delivery.providers import esms
from automation.ingest.app import create_app
from automation.ingest.signatures import base64_hmac, native_signature
from channels.facebook import facebook_signature
from channels.mailgun import mailgun_signature
from channels.twilio import twilio_signature
from channels.zalo import zalo_signature
from tests.feedback.conftest import CALLBACK_SECRETS
from tests.ingest.helpers import SECRETS

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "12"))
SIGNATURE_HEADER = {
    "/webhooks/shopify": ("X-Shopify-Hmac-Sha256", SECRETS["shopify"]),
    "/webhooks/haravan": ("X-Haravan-Hmacsha256", SECRETS["haravan"]),
    "/webhooks/sapo": ("X-Sapo-Hmac-Sha256", SECRETS["sapo"]),
    "/webhooks/woocommerce": ("X-WC-Webhook-Signature", SECRETS["woocommerce"]),
}
TABLES = (Event, MessageEvent, Contact, Suppression)


@pytest.fixture
def client(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The real app over ASGI, with the webhook and provider callback secrets set."""
    for key, value in {**CALLBACK_SECRETS, "HARAVAN_VERIFY_TOKEN": "haravan-verify"}.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    with TestClient(create_app()) as test_client:
        yield test_client


# Loaded at collection (schemathesis' lazy fixture loader does not support pytest 9 yet).
schema = schemathesis.openapi.from_dict(create_app().openapi()).include(
    path_regex="^/(webhooks|callbacks)/"
)


def encode(case: Any) -> tuple[bytes, str | None]:
    """The exact request body (what the signature covers) and its content type."""
    body = getattr(case, "body", None)
    if body is None or type(body).__name__ == "NotSet":
        return b"", None
    if case.media_type == "application/x-www-form-urlencoded" and isinstance(body, dict):
        return urlencode({k: str(v) for k, v in body.items()}).encode(), case.media_type
    if isinstance(body, bytes):
        return body, case.media_type
    return json.dumps(body, ensure_ascii=False).encode(), "application/json"


def sign(case: Any, path: str, query: str, body: bytes) -> dict[str, str]:
    """The signing hook: the headers a real provider or shop would add for this request."""
    headers: dict[str, str] = {}
    if path in SIGNATURE_HEADER:
        name, secret = SIGNATURE_HEADER[path]
        headers[name] = base64_hmac(secret, body)
    elif path == "/webhooks/events":
        stamp = int(time.time())
        headers["X-Timestamp"] = str(stamp)
        headers["X-Signature"] = native_signature(SECRETS["events"], stamp, body)
    elif path == "/callbacks/twilio":
        from urllib.parse import parse_qsl

        url = CALLBACK_SECRETS["PUBLIC_BASE_URL"] + path + (f"?{query}" if query else "")
        params = parse_qsl(body.decode(errors="replace"), keep_blank_values=True)
        headers["X-Twilio-Signature"] = twilio_signature(
            CALLBACK_SECRETS["TWILIO_AUTH_TOKEN"], url, params
        )
    elif path == "/callbacks/zalo":
        stamp = str(int(time.time() * 1000))
        try:
            data = json.loads(body)
            stamp = str(data.get("timestamp", stamp)) if isinstance(data, dict) else stamp
        except ValueError:
            pass
        headers["X-ZEvent-Signature"] = "mac=" + zalo_signature(
            CALLBACK_SECRETS["ZALO_APP_ID"], body, stamp, CALLBACK_SECRETS["ZALO_OA_SECRET"]
        )
    elif path == "/callbacks/facebook" and case.method.upper() == "POST":
        headers["X-Hub-Signature-256"] = facebook_signature(
            CALLBACK_SECRETS["FACEBOOK_APP_SECRET"], body
        )
    return headers


def sign_mailgun(case: Any) -> None:
    """Mailgun signs inside the body: put a valid signature block in a JSON object body."""
    if case.path == "/callbacks/mailgun" and isinstance(getattr(case, "body", None), dict):
        stamp, token = str(int(time.time())), "t" * 50
        key = CALLBACK_SECRETS["MAILGUN_SIGNING_KEY"]
        case.body["signature"] = {
            "timestamp": stamp, "token": token, "signature": mailgun_signature(key, stamp, token)
        }


def signed_call(client: TestClient, case: Any) -> Any:
    """Send the generated case through the ASGI app with its signature headers."""
    sign_mailgun(case)
    body, content_type = encode(case)
    path_parameters = dict(case.path_parameters or {})
    if case.path.startswith("/callbacks/esms/"):
        raw = str(path_parameters.get("message_id", "1"))
        if raw.isascii() and raw.isdigit() and int(raw[:19]) > 0 and len(raw) <= 18:
            path_parameters["token"] = esms.token(int(raw), get_settings())
    path = case.path.format(**{k: str(v) for k, v in path_parameters.items()})
    query = urlencode({k: str(v) for k, v in (case.query or {}).items()})
    headers = {k: str(v) for k, v in (case.headers or {}).items()}
    if content_type:
        headers["Content-Type"] = content_type
    headers.update(sign(case, case.path, query, body))
    url = path + (f"?{query}" if query else "")
    return client.request(case.method, url, content=body or None, headers=headers)


def stored(session: Session) -> tuple[int, ...]:
    session.expire_all()
    return tuple(
        int(session.scalar(select(func.count()).select_from(table)) or 0) for table in TABLES
    )


@schema.parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_signed_hostile_requests_get_declared_4xx_never_5xx(
    case: Any, client: TestClient, session: Session
) -> None:
    before = stored(session)
    response = signed_call(client, case)
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        assert stored(session) == before, (case.path, response.status_code, response.text)
    case.validate_response(response, checks=[status_code_conformance])
