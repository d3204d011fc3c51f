"""Delivery fixtures: settings with test templates and loopback providers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from automation.core.config import Settings, get_settings
from automation.delivery.channels import close_adapters
from tests.delivery.helpers import Loopback, esms_ok, write_templates, zns_ok


@pytest.fixture
def zns_server() -> Iterator[Loopback]:
    server = Loopback(zns_ok)
    yield server
    server.close()


@pytest.fixture
def esms_server() -> Iterator[Loopback]:
    server = Loopback(esms_ok)
    yield server
    server.close()


class SmtpSink:
    """aiosmtpd handler keeping every accepted message."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.messages.append(
            (envelope.mail_from, list(envelope.rcpt_tos), envelope.content)  # type: ignore[attr-defined]
        )
        return "250 OK"


@pytest.fixture
def smtp_sink() -> Iterator[tuple[SmtpSink, str]]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = SmtpSink()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    yield sink, f"smtp://127.0.0.1:{port}"
    controller.stop()


@pytest.fixture
def dsettings(
    settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    zns_server: Loopback,
    esms_server: Loopback,
    smtp_sink: tuple[SmtpSink, str],
) -> Iterator[Settings]:
    """Settings with test templates and every channel pointed at a loopback server."""
    values = {
        "TEMPLATES_DIR": str(write_templates(tmp_path / "templates")),
        "OUTBOX_FILE": str(tmp_path / "outbox.jsonl"),
        "ZALO_ACCESS_TOKEN": "test-token",
        "ZALO_ZNS_API_BASE": zns_server.url,
        "ESMS_API_KEY": "k",
        "ESMS_SECRET_KEY": "s",
        "ESMS_BRANDNAME": "SHOP",
        "ESMS_API_BASE": esms_server.url,
        "SMTP_URL": smtp_sink[1],
        "EMAIL_FROM": "Shop <shop@example.vn>",
        "SHOP_NAME": "Shop",
        "PROVIDER_RATE_LIMITS": '{"esms": 0, "zalo_zns": 0, "smtp": 0}',
        "DELIVERY_MIN_BACKOFF_MS": "1000",
        "ESMS_AD_POOL_SECONDS": "0",  # one request per SMS here; pools: test_esms_pools.py
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    close_adapters()
    yield get_settings()
    close_adapters()
    get_settings.cache_clear()
