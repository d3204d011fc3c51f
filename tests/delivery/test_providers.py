"""The provider registry: one unit per provider, and nothing else in automation/ names one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from automation.core.config import Settings
from automation.core.vocabulary import CHANNELS
from automation.delivery.channels import build_adapter, channel_state, provider_name
from automation.delivery.providers import DEFAULT_RATES, ROUTES, SENDERS, callback_url, sender_for
from automation.delivery.providers.esms import verify_token
from automation.ingest.app import create_app
from channels.esms import EsmsChannel
from channels.filetransport import FileTransport
from channels.twilio import TwilioChannel

ROOT = Path(__file__).resolve().parents[2]
ESMS = {"esms_api_key": "k", "esms_secret_key": "s", "esms_brandname": "SHOP"}
TWILIO = {"twilio_account_sid": "AC1", "twilio_auth_token": "t", "twilio_from": "+15005550006"}


def test_every_channel_has_a_sender_and_the_rates_stay_as_they_were() -> None:
    assert {s.channel for s in SENDERS} == set(CHANNELS)
    assert DEFAULT_RATES == {
        "esms": 30.0,
        "twilio": 10.0,
        "zalo_zns": 100.0,
        "zalo_oa": 50.0,
        "messenger": 100.0,
        "smtp": 50.0,
        "file": 0.0,
    }


def test_sms_provider_setting_picks_the_sender_and_its_callback_url(tmp_path: Path) -> None:
    base = {"public_base_url": "https://hooks.example.vn/", "outbox_file": str(tmp_path / "o")}
    esms = Settings(**base, **ESMS, **TWILIO)
    twilio = Settings(**base, **ESMS, **TWILIO, sms_provider="twilio")
    assert sender_for("sms", esms).provider == "esms"
    assert sender_for("sms", twilio).provider == "twilio"
    url = callback_url("sms", 42, esms)
    assert url is not None and url.startswith("https://hooks.example.vn/callbacks/esms/42/")
    assert verify_token(42, url.rsplit("/", 1)[1], esms)
    assert not verify_token(43, url.rsplit("/", 1)[1], esms)
    assert callback_url("sms", 42, twilio) == (
        "https://hooks.example.vn/callbacks/twilio?message_id=42"
    )
    assert callback_url("email", 42, esms) is None
    adapter, provider = build_adapter("sms", twilio)
    assert isinstance(adapter, TwilioChannel) and provider == provider_name(adapter) == "twilio"
    adapter, provider = build_adapter("sms", esms)
    assert isinstance(adapter, EsmsChannel) and provider == provider_name(adapter) == "esms"


def test_missing_credentials_name_the_settings_and_use_the_file_transport(
    tmp_path: Path,
) -> None:
    settings = Settings(outbox_file=str(tmp_path / "outbox.jsonl"), sms_provider="twilio")
    state = channel_state("sms", settings)
    assert (state.provider, state.configured) == ("file", False)
    assert state.detail.endswith("set TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM")
    adapter, provider = build_adapter("sms", settings)
    assert isinstance(adapter, FileTransport) and provider == provider_name(adapter) == "file"
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        channel_state("fax", settings)


def test_callback_routes_are_mounted_at_their_old_paths() -> None:
    paths = {
        (method.upper(), path)
        for path, operations in create_app().openapi()["paths"].items()
        for method in operations
        if path.startswith("/callbacks")
    }
    assert paths == {
        ("GET", "/callbacks/esms/pool/{pool_id}/{token}"),
        ("GET", "/callbacks/esms/{message_id}/{token}"),
        ("POST", "/callbacks/twilio"),
        ("POST", "/callbacks/zalo"),
        ("GET", "/callbacks/facebook"),
        ("POST", "/callbacks/facebook"),
        ("POST", "/callbacks/mailgun"),
        ("POST", "/callbacks/sendgrid"),
    }
    assert len({(r.method, r.path) for r in ROUTES}) == len(ROUTES)


@pytest.mark.parametrize("name", ["esms", "twilio", "mailgun", "sendgrid"])
def test_a_provider_is_named_only_in_its_unit_the_registry_and_config(name: str) -> None:
    allowed = {
        f"automation/delivery/providers/{name}.py",
        "automation/delivery/providers/__init__.py",
        "automation/core/config.py",
    }
    pattern = re.compile(name, re.IGNORECASE)
    naming = {
        str(path.relative_to(ROOT))
        for path in (ROOT / "automation").rglob("*.py")
        if pattern.search(path.read_text(encoding="utf-8"))
    }
    assert naming <= allowed, sorted(naming - allowed)
