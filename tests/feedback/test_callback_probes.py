"""Issue 11 probes: signed callbacks naming odd message ids answer 4xx, never 500.

Each provider's callback is signed with the test secrets and names our message by an
id that cannot be ours (``²`` is a Unicode digit, 30 nines is beyond BIGINT), or
carries a NUL character or an over-long id. The answer is a 4xx JSON error (or a 200
"ignored" for an id that is well formed but unknown) and nothing is stored.
"""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core.config import get_settings
from automation.core.models import Event, MessageEvent
from automation.delivery.providers import esms
from channels.facebook import facebook_signature
from channels.mailgun import mailgun_signature
from channels.twilio import twilio_signature
from channels.zalo import zalo_signature
from tests.feedback.conftest import CALLBACK_SECRETS

ODD_IDS = ["²", "9" * 30, "12\x0034", "7" * 300]
BASE = CALLBACK_SECRETS["PUBLIC_BASE_URL"]


def stored(session: Session) -> tuple[int, int]:
    session.expire_all()
    return (
        int(session.scalar(select(func.count()).select_from(MessageEvent)) or 0),
        int(session.scalar(select(func.count()).select_from(Event)) or 0),
    )


def check(response: Any) -> None:
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    if response.status_code >= 400:
        assert response.status_code in (400, 401, 404, 413, 422), response.text
        assert response.json()["error"]


def twilio(client: TestClient, odd: str) -> Any:
    params = [("MessageSid", "SM" + "1" * 32), ("MessageStatus", "delivered")]
    path = "/callbacks/twilio?" + urlencode({"message_id": odd})
    signature = twilio_signature(CALLBACK_SECRETS["TWILIO_AUTH_TOKEN"], BASE + path, params)
    return client.post(path, data=dict(params), headers={"X-Twilio-Signature": signature})


def zalo(client: TestClient, odd: str) -> Any:
    stamp = str(int(time.time() * 1000))
    body = json.dumps({
        "app_id": CALLBACK_SECRETS["ZALO_APP_ID"], "event_name": "user_received_message",
        "timestamp": stamp, "sender": {"id": odd}, "recipient": {"id": "84912345678"},
        "message": {"delivery_time": stamp, "msg_id": odd, "tracking_id": odd},
    }).encode()
    mac = zalo_signature(CALLBACK_SECRETS["ZALO_APP_ID"], body, stamp,
                         CALLBACK_SECRETS["ZALO_OA_SECRET"])
    return client.post("/callbacks/zalo", content=body,
                       headers={"X-ZEvent-Signature": mac, "Content-Type": "application/json"})


def mailgun(client: TestClient, odd: str) -> Any:
    stamp, token = str(int(time.time())), "t" * 50
    key = CALLBACK_SECRETS["MAILGUN_SIGNING_KEY"]
    body = {
        "signature": {"timestamp": stamp, "token": token,
                      "signature": mailgun_signature(key, stamp, token)},
        "event-data": {"event": "delivered", "id": odd, "timestamp": time.time(),
                       "user-variables": {"message_id": odd},
                       "message": {"headers": {"message-id": odd}}},
    }
    return client.post("/callbacks/mailgun", json=body)


def esms_call(client: TestClient, odd: str) -> Any:
    token = esms.token(1, get_settings())
    query = urlencode({"SMSID": odd, "SendStatus": "5", "SendSuccess": "1", "SendFailed": "0"})
    return client.get(f"/callbacks/esms/{quote(odd)}/{token}?{query}")


def facebook(client: TestClient, odd: str) -> Any:
    body = json.dumps({"object": "page", "entry": [{"id": "PAGE", "time": 1458692752478,
        "messaging": [
            {"sender": {"id": odd}, "recipient": {"id": "PAGE"}, "timestamp": 1458692752478,
             "delivery": {"mids": [odd], "watermark": 1458668856253}},
            {"sender": {"id": odd}, "recipient": {"id": "PAGE"}, "timestamp": 1458692752478,
             "message": {"mid": odd, "text": "hello"}},
        ]}]}).encode()
    signature = facebook_signature(CALLBACK_SECRETS["FACEBOOK_APP_SECRET"], body)
    return client.post("/callbacks/facebook", content=body,
                       headers={"X-Hub-Signature-256": signature})


@pytest.mark.parametrize("odd", ODD_IDS, ids=["superscript", "30-nines", "nul", "300-chars"])
@pytest.mark.parametrize("call", [twilio, zalo, mailgun, esms_call, facebook],
                         ids=lambda f: f.__name__)
def test_signed_callback_with_an_odd_message_id_is_4xx(
    client: TestClient, session: Session, call: Any, odd: str
) -> None:
    response = call(client, odd)
    check(response)
    assert stored(session) == (0, 0)


def test_database_down_answers_503_with_retry_after(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from automation.core.db import dispose_all

    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:9/down")
    get_settings.cache_clear()
    dispose_all()
    response = twilio(client, "42")
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "30"
    assert response.json()["error"] == "database_unavailable"
    assert "Traceback" not in response.text
    get_settings.cache_clear()
    dispose_all()
