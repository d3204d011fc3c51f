"""Full flow through the real entry points on PostgreSQL + Redis.

`mactl db upgrade`, `mactl apply playbooks/`, `mactl serve` and `mactl worker` as OS
processes; a signed Shopify orders/create webhook and a signed native lead.captured
event; loopback Zalo ZNS and SMTP servers receive the order confirmation, the receipt
and the welcome e-mail; `mactl scheduler --once --now` later sends nothing twice; a
signed Zalo and a signed Mailgun callback move the messages to delivered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.system.procs import (
    REPO,
    SECRETS,
    Proc,
    Providers,
    free_port,
    mactl_ok,
    native_headers,
    shopify_headers,
    wait_for,
    wait_http_ok,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]
PHONE = "0912 345 678"
ZNS_PHONE = "84912345678"
BUYER_EMAIL = "lan.tran@example.vn"
LEAD_EMAIL = "minh.le@example.vn"


def shopify_order() -> bytes:
    """The published orders/create fixture, made Vietnamese in memory (file untouched)."""
    fixture = REPO / "tests/fixtures/shopify/orders_create.json"
    data: dict[str, Any] = json.loads(fixture.read_text())
    stamp = datetime.now(UTC).replace(microsecond=0).isoformat()
    data["created_at"] = data["updated_at"] = data["processed_at"] = stamp  # placed just now
    data["currency"] = "VND"
    data["total_price"] = data["current_total_price"] = "1250000"
    data["email"] = BUYER_EMAIL
    data["phone"] = PHONE
    for item in data["line_items"]:
        item["price"] = "625000"
    data["customer"].update(
        {"email": BUYER_EMAIL, "phone": PHONE, "first_name": "Lan", "last_name": "Trần"}
    )
    data["customer"]["default_address"].update({"country_code": "VN", "phone": PHONE})
    data["billing_address"].update(
        {"country_code": "VN", "phone": PHONE, "first_name": "Lan", "last_name": "Trần"}
    )
    return json.dumps(data, ensure_ascii=False).encode()


def lead_body() -> bytes:
    return json.dumps(
        {
            "id": "lead-form-1",
            "type": "lead.captured",
            "occurred_at": datetime.now(UTC).isoformat(),
            "contact": {
                "email": LEAD_EMAIL,
                "first_name": "Minh",
                "last_name": "Lê",
                "consent": {"email": {"marketing": True}},
            },
            "properties": {"form": "popup", "coupon_code": "CHAOMINH"},
        },
        ensure_ascii=False,
    ).encode()


def rows(engine: sa.Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]


def messages(engine: sa.Engine) -> list[dict[str, Any]]:
    return rows(
        engine,
        "SELECT m.id, m.channel, m.template, m.status, m.purpose, m.address, "
        "m.provider_message_id, m.attempts, c.email FROM messages m "
        "JOIN contacts c ON c.id = m.contact_id ORDER BY m.id",
    )


def test_system_full_flow_postgres_redis(
    system_env: dict[str, str], providers: Providers, pg_engine: sa.Engine, tmp_path: Path
) -> None:
    env = system_env
    port = free_port()
    env["PUBLIC_BASE_URL"] = f"http://127.0.0.1:{port}"
    mactl_ok("db", "upgrade", env=env, cwd=tmp_path)
    serve = Proc("serve", ["serve", "--port", str(port)], env, tmp_path, tmp_path / "serve.log")
    worker = Proc(
        "worker", ["worker", "--processes", "1", "--threads", "2"], env, tmp_path,
        tmp_path / "worker.log",
    )
    procs = (serve, worker)
    try:
        serve.start()
        worker.start()
        mactl_ok("apply", str(REPO / "playbooks"), env=env, cwd=tmp_path)  # while they start
        base = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{base}/healthz", serve)

        order = shopify_order()
        answer = httpx.post(
            f"{base}/webhooks/shopify",
            content=order,
            headers=shopify_headers(
                SECRETS["SHOPIFY_WEBHOOK_SECRET"], order, "orders/create", "wh-order-1"
            ),
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        lead = lead_body()
        answer = httpx.post(
            f"{base}/webhooks/events",
            content=lead,
            headers=native_headers(SECRETS["EVENTS_WEBHOOK_SECRET"], lead),
            timeout=10,
        )
        assert answer.status_code == 202, answer.text

        def processed() -> bool:
            pending = rows(
                pg_engine,
                "SELECT count(*) AS n FROM events WHERE source <> 'internal' "
                "AND processed_at IS NULL",
            )[0]["n"]
            stored = rows(pg_engine, "SELECT count(*) AS n FROM events WHERE source <> 'internal'")
            return stored[0]["n"] == 2 and pending == 0

        wait_for(processed, 30, "the worker to process both webhook events", procs)

        def all_sent() -> list[dict[str, Any]] | None:
            found = messages(pg_engine)
            done = len(found) >= 3 and all(m["status"] == "sent" for m in found)
            return found if done else None

        sent = wait_for(all_sent, 30, "three sent messages", procs)
        by_template = {m["template"]: m for m in sent}
        assert set(by_template) == {
            "order_status/confirmation",
            "order_status/receipt",
            "lead_capture/welcome",
        }, sent
        confirmation = by_template["order_status/confirmation"]
        receipt = by_template["order_status/receipt"]
        welcome = by_template["lead_capture/welcome"]
        assert confirmation["channel"] == "zalo_zns" and confirmation["email"] == BUYER_EMAIL
        assert receipt["channel"] == "email" and receipt["address"] == BUYER_EMAIL
        assert welcome["channel"] == "email" and welcome["address"] == LEAD_EMAIL

        # Zalo ZNS got exactly one well-formed request: the order confirmation.
        assert len(providers.zns.hits) == 1, providers.zns.hits
        hit = providers.zns.hits[0]
        assert hit.path.endswith("/message/template")
        assert hit.headers["access_token"] == "zalo-system-token"
        assert hit.body["phone"] == ZNS_PHONE
        assert hit.body["tracking_id"] == str(confirmation["id"])
        assert hit.body["template_id"] == "000020"
        data = hit.body["template_data"]
        assert data["customer_name"] == "Lan" and data["order_code"] == "#1001"
        assert data["order_total"].replace("\xa0", " ") == "1.250.000 ₫"
        assert confirmation["provider_message_id"] == f"zns-{confirmation['id']}"
        assert providers.esms.hits == []  # no fallback needed

        # SMTP: the receipt and the welcome (marketing: [QC] label, unsubscribe link).
        mails = providers.smtp.recorder.parsed()
        assert len(mails) == 2, [m["Subject"] for m in mails]
        by_to = {m["To"].addresses[0].addr_spec: m for m in mails}
        receipt_mail, welcome_mail = by_to[BUYER_EMAIL], by_to[LEAD_EMAIL]
        assert "#1001" in receipt_mail["Subject"]
        assert receipt_mail["Message-ID"].startswith(f"<msg-{receipt['id']}@")
        assert welcome_mail["Subject"].startswith("[QC]")
        assert "Minh" in welcome_mail["Subject"]
        assert welcome_mail["Message-ID"].startswith(f"<msg-{welcome['id']}@")
        assert welcome_mail["List-Unsubscribe"]
        text = welcome_mail.get_body(preferencelist=("plain",)).get_content()
        assert "CHAOMINH" in text

        # A scheduler pass a few hours later finds nothing due and sends nothing again.
        later = (datetime.now(UTC) + timedelta(hours=3)).isoformat()
        counts = json.loads(mactl_ok("scheduler", "--once", "--now", later, env=env, cwd=tmp_path))
        assert all(v >= 0 for v in counts.values()), counts  # no task failed
        time.sleep(1.0)
        assert len(providers.zns.hits) == 1 and len(providers.smtp.recorder.messages) == 2

        listed = json.loads(mactl_ok("enrollments", "list", "--json", env=env, cwd=tmp_path))
        by_seq = {e["sequence"]: e for e in listed}
        assert set(by_seq) == {"order_status", "lead_capture"}, listed
        assert by_seq["lead_capture"]["contact"] == LEAD_EMAIL
        assert by_seq["order_status"]["contact"] == BUYER_EMAIL
        for enrollment in listed:
            assert enrollment["state"] in ("active", "waiting"), enrollment
            assert enrollment["exit_reason"] is None

        # Provider callbacks: Zalo user_received_message and Mailgun delivered.
        zalo = json.loads((REPO / "tests/fixtures/zalo/zns_user_received_message.json").read_text())
        zalo["app_id"] = SECRETS["ZALO_APP_ID"]
        zalo["timestamp"] = str(int(time.time() * 1000))
        zalo["message"]["tracking_id"] = str(confirmation["id"])
        zalo["message"]["msg_id"] = confirmation["provider_message_id"]
        zalo["recipient"]["id"] = ZNS_PHONE
        body = json.dumps(zalo).encode()
        mac = hashlib.sha256(
            SECRETS["ZALO_APP_ID"].encode() + body + zalo["timestamp"].encode()
            + SECRETS["ZALO_OA_SECRET"].encode()
        ).hexdigest()
        answer = httpx.post(
            f"{base}/callbacks/zalo", content=body,
            headers={"X-ZEvent-Signature": f"mac={mac}", "Content-Type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 200 and answer.json()["status"] == "ok", answer.text

        mailgun = json.loads((REPO / "tests/fixtures/mailgun/delivered.json").read_text())
        stamp, token = str(int(time.time())), "system-test-token-0001"
        mailgun["signature"] = {
            "timestamp": stamp,
            "token": token,
            "signature": hmac.new(
                SECRETS["MAILGUN_SIGNING_KEY"].encode(), (stamp + token).encode(), hashlib.sha256
            ).hexdigest(),
        }
        event = mailgun["event-data"]
        event["recipient"] = LEAD_EMAIL
        event["timestamp"] = time.time()
        event["message"]["headers"]["message-id"] = welcome_mail["Message-ID"].strip("<>")
        answer = httpx.post(f"{base}/callbacks/mailgun", json=mailgun, timeout=10)
        assert answer.status_code == 200 and answer.json()["status"] == "ok", answer.text

        # The Zalo callback was stored and answered; the worker applies it from the inbox.
        wait_for(
            lambda: {m["id"]: m["status"] for m in messages(pg_engine)}[confirmation["id"]]
            == "delivered", 30, "the worker to apply the stored Zalo callback", procs,
        )
        status = {m["id"]: m["status"] for m in messages(pg_engine)}
        assert status[confirmation["id"]] == "delivered"
        assert status[welcome["id"]] == "delivered"
        assert status[receipt["id"]] == "sent"
        kinds = rows(
            pg_engine,
            "SELECT message_id, type FROM message_events WHERE type = 'delivered' ORDER BY 1",
        )
        assert {(k["message_id"], k["type"]) for k in kinds} == {
            (confirmation["id"], "delivered"),
            (welcome["id"], "delivered"),
        }
    finally:
        for proc in procs:
            proc.stop()
