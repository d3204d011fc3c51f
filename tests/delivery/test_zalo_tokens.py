"""Zalo OA token rotation through the DB-backed store (provider_tokens), on both backends.

A loopback "Zalo" plays both sides: ZNS (``/message/template``) accepts only the
current access token, OAuth (``/v4/oa/access_token``) accepts each refresh token
exactly once and answers with a new pair, as Zalo does. Adapters are built by
``automation.delivery.channels.build_adapter`` from settings, as workers build them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from admin_cli.main import app
from automation.core.config import Settings, get_settings
from automation.core.db import session_factory
from automation.core.models import ProviderToken
from automation.delivery.channels import build_adapter
from automation.delivery.providers.zalo import TOKEN_KEY as ZALO_TOKEN_KEY
from automation.runtime.scheduler import run_pass
from channels.base import Channel, OutboundMessage, SendResult
from channels.zalo import ZaloZnsChannel
from channels.zalo_token import OAuthRefresher

ROOT = Path(__file__).resolve().parents[2]
APP_ID, APP_SECRET = "app-1", "app-secret"
EXPIRES_IN = 90_000


def zns(n: int = 1) -> OutboundMessage:
    """A ZNS order-confirmation message."""
    return OutboundMessage(
        id=n,
        channel="zalo_zns",
        to="+84912345678",
        text="",
        template_id="231677",
        template_data={"customer_name": "Nguyễn Văn An", "order_code": f"DH{n:03d}"},
    )


@dataclass
class Call:
    """One request the fake Zalo received."""

    path: str
    headers: dict[str, str]
    form: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeZalo:
    """ZNS + OAuth v4 on 127.0.0.1 with single-use, rotating refresh tokens."""

    refresh_token: str = "R1"
    access_tokens: set[str] = field(default_factory=set)
    oauth_delay: float = 0.0
    calls: list[Call] = field(default_factory=list)
    issued: int = 1

    def __post_init__(self) -> None:
        self.lock = threading.Lock()
        zalo = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                if self.path == "/v4/oa/access_token":
                    form = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
                    call = Call(self.path, headers, form, {})
                    answer = zalo.oauth(call)
                    time.sleep(zalo.oauth_delay)
                else:
                    call = Call(self.path, headers, {}, json.loads(raw or b"{}"))
                    answer = zalo.zns(call)
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def oauth(self, call: Call) -> dict[str, Any]:
        """Spend the refresh token (once) and issue the next pair."""
        with self.lock:
            self.calls.append(call)
            form = call.form
            if (
                call.headers.get("secret_key") != APP_SECRET
                or form.get("app_id") != APP_ID
                or form.get("grant_type") != "refresh_token"
            ):
                return {"error": -14002, "error_name": "Invalid app"}
            if form.get("refresh_token") != self.refresh_token:
                return {
                    "error": -14014,
                    "error_name": "Invalid refresh token",
                    "error_description": "Refresh token is invalid or already used",
                }
            self.issued += 1
            access, self.refresh_token = f"A{self.issued}", f"R{self.issued}"
            self.access_tokens = {access}
            return {
                "access_token": access,
                "refresh_token": self.refresh_token,
                "expires_in": str(EXPIRES_IN),
            }

    def zns(self, call: Call) -> dict[str, Any]:
        """Send if the access token is current; -124 otherwise."""
        with self.lock:
            self.calls.append(call)
            if call.headers.get("access_token") not in self.access_tokens:
                return {"error": -124, "message": "Access token is invalid"}
            return {
                "error": 0,
                "message": "Success",
                "data": {"msg_id": f"zmsg-{call.body['tracking_id']}", "sent_time": "1"},
            }

    def expire_access_tokens(self) -> None:
        """Zalo-side expiry: every issued access token stops working."""
        with self.lock:
            self.access_tokens = set()

    def oauth_calls(self) -> list[Call]:
        return [c for c in self.calls if c.path == "/v4/oa/access_token"]

    def zns_tokens(self) -> list[str]:
        return [c.headers["access_token"] for c in self.calls if c.path == "/message/template"]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def zalo() -> Iterator[FakeZalo]:
    server = FakeZalo()
    yield server
    server.close()


@pytest.fixture
def zsettings(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, zalo: FakeZalo
) -> Iterator[Settings]:
    """Zalo configured with app credentials + refresh token, pointed at the fake."""
    for key, value in {
        "ZALO_APP_ID": APP_ID,
        "ZALO_APP_SECRET": APP_SECRET,
        "ZALO_ACCESS_TOKEN": "A1",
        "ZALO_REFRESH_TOKEN": "R1",
        "ZALO_OAUTH_BASE": zalo.url,
        "ZALO_ZNS_API_BASE": zalo.url,
    }.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.fixture
def adapters(zsettings: Settings) -> Iterator[list[ZaloZnsChannel]]:
    """Build ZNS adapters the way a worker process does; closed afterwards."""
    built: list[ZaloZnsChannel] = []
    yield built
    for adapter in built:
        adapter.close()
        if isinstance(adapter.tokens, OAuthRefresher):
            adapter.tokens.close()


def new_worker(settings: Settings, built: list[ZaloZnsChannel]) -> ZaloZnsChannel:
    """A fresh adapter + refresher + DB token store (one worker process' worth)."""
    adapter, provider = build_adapter("zalo_zns", settings)
    assert provider == "zalo_zns" and isinstance(adapter, ZaloZnsChannel)
    assert isinstance(adapter.tokens, OAuthRefresher)
    built.append(adapter)
    return adapter


def stored(session: Session) -> ProviderToken:
    """The provider_tokens row as committed now."""
    session.rollback()
    row = session.get(ProviderToken, ZALO_TOKEN_KEY, populate_existing=True)
    assert row is not None
    return row


def put_token(session: Session, access: str, refresh: str, expires_in: float) -> None:
    """Store a pair as a previous worker would have."""
    expires = datetime.now(UTC) + timedelta(seconds=expires_in)
    session.add(
        ProviderToken(
            provider=ZALO_TOKEN_KEY, access_token=access, refresh_token=refresh, expires_at=expires
        )
    )
    session.commit()


def concurrently(adapters: list[Channel], messages: list[OutboundMessage]) -> list[Any]:
    """Send one message per adapter at the same moment; results or exceptions."""
    results: list[Any] = [None] * len(messages)
    start = threading.Barrier(len(messages))

    def run(i: int) -> None:
        start.wait()
        try:
            results[i] = adapters[i].send(messages[i])
        except Exception as exc:  # noqa: BLE001 - collected for the assertions
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(messages))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return results


def test_expired_token_is_refreshed_and_the_rotated_pair_saved_together(
    session: Session, zsettings: Settings, zalo: FakeZalo, adapters: list[ZaloZnsChannel]
) -> None:
    put_token(session, "A1", "R1", expires_in=-600)  # expired ten minutes ago
    result = new_worker(zsettings, adapters).send(zns(7))

    assert result.provider_message_id == "zmsg-7"
    [oauth] = zalo.oauth_calls()
    assert oauth.headers["secret_key"] == APP_SECRET
    assert oauth.form == {"refresh_token": "R1", "app_id": APP_ID, "grant_type": "refresh_token"}
    assert zalo.zns_tokens() == ["A2"]  # sent with the new token, never with the expired one
    row = stored(session)
    assert (row.access_token, row.refresh_token) == ("A2", "R2")
    assert row.expires_at is not None
    assert row.expires_at.timestamp() == pytest.approx(time.time() + EXPIRES_IN, abs=60)


def test_rejected_token_refreshes_retries_and_next_refresh_uses_the_rotated_token(
    session: Session, zsettings: Settings, zalo: FakeZalo, adapters: list[ZaloZnsChannel]
) -> None:
    # No row yet: the store seeds it from ZALO_ACCESS_TOKEN / ZALO_REFRESH_TOKEN (A1 / R1),
    # but Zalo no longer accepts A1.
    worker = new_worker(zsettings, adapters)
    assert worker.send(zns(1)).provider_message_id == "zmsg-1"
    assert zalo.zns_tokens() == ["A1", "A2"]
    calls = [c for c in zalo.calls if c.path == "/message/template"]
    assert calls[0].body == calls[1].body  # the same message retried once
    row = stored(session)
    assert (row.access_token, row.refresh_token) == ("A2", "R2")

    zalo.expire_access_tokens()  # a day later Zalo rejects A2 too
    assert worker.send(zns(2)).provider_message_id == "zmsg-2"
    assert [c.form["refresh_token"] for c in zalo.oauth_calls()] == ["R1", "R2"]
    row = stored(session)
    assert (row.access_token, row.refresh_token) == ("A3", "R3")

    # A worker started later reads the pair from the database: no refresh, no stale R1.
    restarted = new_worker(zsettings, adapters)
    assert restarted.send(zns(3)).provider_message_id == "zmsg-3"
    assert len(zalo.oauth_calls()) == 2
    assert zalo.zns_tokens()[-1] == "A3"


def test_concurrent_refreshes_in_one_worker_spend_the_refresh_token_once(
    session: Session, zsettings: Settings, zalo: FakeZalo, adapters: list[ZaloZnsChannel]
) -> None:
    put_token(session, "A1", "R1", expires_in=-600)
    zalo.oauth_delay = 0.3  # keep the refresh in flight while the other threads arrive
    shared = new_worker(zsettings, adapters)  # worker threads share the process' adapter
    results = concurrently([shared] * 4, [zns(n) for n in range(1, 5)])

    assert all(isinstance(r, SendResult) for r in results), results
    assert [c.form["refresh_token"] for c in zalo.oauth_calls()] == ["R1"]
    assert zalo.zns_tokens() == ["A2"] * 4
    row = stored(session)
    assert (row.access_token, row.refresh_token) == ("A2", "R2")


def test_two_workers_racing_spend_the_refresh_token_once(
    session: Session, zsettings: Settings, zalo: FakeZalo, adapters: list[ZaloZnsChannel]
) -> None:
    """Two workers with their own refreshers (no shared in-process lock) race to refresh.

    The database lock held across load, refresh and save makes the second wait and then
    find the rotated pair: R1 is spent once and both messages go with A2.
    """
    put_token(session, "A1", "R1", expires_in=-600)
    zalo.oauth_delay = 0.3
    first, second = new_worker(zsettings, adapters), new_worker(zsettings, adapters)
    results = concurrently([first, second], [zns(1), zns(2)])

    assert all(isinstance(r, SendResult) for r in results), results
    assert [c.form["refresh_token"] for c in zalo.oauth_calls()] == ["R1"]
    assert zalo.zns_tokens() == ["A2", "A2"]
    row = stored(session)
    assert (row.access_token, row.refresh_token) == ("A2", "R2")


WORKER = """
import sys, time
from automation.delivery.channels import build_adapter
from channels.base import OutboundMessage
adapter, _ = build_adapter("zalo_zns")
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
msg = OutboundMessage(id=int(sys.argv[1]), channel="zalo_zns", to="+84912345678", text="",
                      template_id="231677")
print(adapter.send(msg).provider_message_id)
"""


def test_two_worker_processes_spend_the_refresh_token_once(
    session: Session, zsettings: Settings, zalo: FakeZalo, tmp_path: Path
) -> None:
    """The same race between two real OS processes, started to refresh at the same moment."""
    put_token(session, "A1", "R1", expires_in=-600)
    zalo.oauth_delay = 0.5
    script = tmp_path / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    start = str(time.time() + 4)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, str(script), str(n), start],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for n in (1, 2)
    ]  # fmt: skip
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sorted(out.strip() for out, _ in outputs) == ["zmsg-1", "zmsg-2"]
    assert [c.form["refresh_token"] for c in zalo.oauth_calls()] == ["R1"]
    assert zalo.zns_tokens() == ["A2", "A2"]
    row = stored(session)
    assert (row.access_token, row.refresh_token) == ("A2", "R2")


def test_first_use_by_several_threads_seeds_the_row_once(
    session: Session, zsettings: Settings, zalo: FakeZalo, adapters: list[ZaloZnsChannel]
) -> None:
    zalo.access_tokens = {"A1"}  # the configured token is still valid
    workers: list[Channel] = [new_worker(zsettings, adapters) for _ in range(4)]
    results = concurrently(workers, [zns(n) for n in range(1, 5)])

    assert all(isinstance(r, SendResult) for r in results), results
    assert zalo.oauth_calls() == []
    row = stored(session)
    assert (row.access_token, row.refresh_token) == ("A1", "R1")


def test_scheduler_refreshes_before_expiry_even_when_nothing_is_sent(
    session: Session, zsettings: Settings, zalo: FakeZalo
) -> None:
    put_token(session, "A1", "R1", expires_in=5 * 3600)  # not due yet (ahead: 2 h)
    factory = session_factory(zsettings)
    assert run_pass(factory)["zalo_tokens"] == 0
    assert zalo.oauth_calls() == []

    in_4h = datetime.now(UTC) + timedelta(hours=4)  # now the token expires within 2 h
    assert run_pass(factory, in_4h)["zalo_tokens"] == 1
    assert [c.form["refresh_token"] for c in zalo.oauth_calls()] == ["R1"]
    assert zalo.zns_tokens() == []  # nothing was sent
    row = stored(session)
    assert (row.access_token, row.refresh_token) == ("A2", "R2")
    assert row.expires_at is not None
    assert row.expires_at.timestamp() == pytest.approx(in_4h.timestamp() + EXPIRES_IN, abs=60)
    assert run_pass(factory, in_4h)["zalo_tokens"] == 0  # fresh again: no second refresh


def test_doctor_warns_weeks_before_the_refresh_token_lapses(
    session: Session, zsettings: Settings, zalo: FakeZalo
) -> None:
    put_token(session, "A1", "R1", expires_in=3600)
    runner = CliRunner()
    report = json.loads(runner.invoke(app, ["doctor", "--json"]).output)
    assert not [w for w in report["warnings"] if "refresh token" in w]

    row = stored(session)
    row.updated_at = datetime.now(UTC) - timedelta(days=80)  # not renewed for 80 days
    session.commit()
    result = runner.invoke(app, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    [warning] = [w for w in json.loads(result.output)["warnings"] if "refresh token" in w]
    assert "in 9 days" in warning or "in 10 days" in warning
    assert "ZALO_REFRESH_TOKEN" in warning and "scheduler" in warning
