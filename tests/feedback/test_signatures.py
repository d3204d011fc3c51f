"""Provider signature functions against vendor vectors and fixtures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from channels.facebook import facebook_signature, verify_facebook
from channels.mailgun import verify_mailgun
from channels.twilio import twilio_signature, verify_twilio
from channels.zalo import verify_zalo

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def load_fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_twilio_vector_from_twilio_python() -> None:
    vector = json.loads(load_fixture("twilio/request_validator_vector.json"))
    params = list(vector["params"].items())
    assert twilio_signature(vector["auth_token"], vector["url"], params) == vector[
        "expected_signature"
    ]
    assert verify_twilio(vector["auth_token"], vector["url"], params, vector["expected_signature"])
    assert not verify_twilio("other", vector["url"], params, vector["expected_signature"])
    tampered = [*params[:-1], ("Caller", "+10000000000")]
    assert not verify_twilio(vector["auth_token"], vector["url"], tampered, vector[
        "expected_signature"
    ])


def test_mailgun_fixtures_verify_with_anymail_key() -> None:
    for name in ("mailgun/delivered.json", "mailgun/permanent_fail.json"):
        block = json.loads(load_fixture(name))["signature"]
        args = (block["timestamp"], block["token"], block["signature"])
        assert verify_mailgun("TEST_WEBHOOK_SIGNING_KEY", *args), name
        assert not verify_mailgun("WRONG_KEY", *args), name


def test_zalo_mac_with_and_without_prefix() -> None:
    body = load_fixture("zalo/zns_user_received_message.json")
    data = json.loads(body)
    raw = (data["app_id"] + body.decode() + data["timestamp"] + "secret").encode()
    mac = hashlib.sha256(raw).hexdigest()
    for header in (mac, f"mac={mac}", f"mac = {mac}", mac.upper()):
        assert verify_zalo(data["app_id"], body, data["timestamp"], "secret", header), header
    assert not verify_zalo(data["app_id"], body + b" ", data["timestamp"], "secret", mac)
    assert not verify_zalo(data["app_id"], body, data["timestamp"], "other", mac)


def test_facebook_signature() -> None:
    body = b'{"object":"page"}'
    header = facebook_signature("s3cret", body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_facebook("s3cret", body, header)
    assert not verify_facebook("s3cret", body + b"x", header)
    assert not verify_facebook("s3cret", body, "sha256=" + "0" * 64)
