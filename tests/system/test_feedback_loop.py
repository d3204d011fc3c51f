"""Results feed back into the contact, through the real processes on PostgreSQL + Redis.

`mactl serve` and `mactl worker` as OS processes, signed Shopify and native webhooks,
loopback Zalo ZNS / eSMS / SMTP servers:

- Zalo answers -118: the order confirmation falls back to eSMS, and the next order
  update for that contact goes by SMS without calling Zalo;
- an SMTP 550 at send suppresses the address: the next marketing e-mail is not
  attempted while order-status e-mail to other addresses still goes;
- an eSMS delivery report of failure sends the step's e-mail fallback, once;
- a one-click unsubscribe exits every marketing enrollment at once while the contact's
  order-status messages still go out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import sqlalchemy as sa

from tests.system.procs import (
    REPO,
    SECRETS,
    Proc,
    Providers,
    free_port,
    lead_event,
    mactl_ok,
    native_headers,
    shopify_headers,
    wait_for,
    wait_http_ok,
)

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


def shopify_order(n: int, email: str, phone: str, first_name: str) -> dict[str, Any]:
    """The published orders/create fixture for customer ``n`` (Vietnamese, in memory)."""
    fixture = REPO / "tests/fixtures/shopify/orders_create.json"
    data: dict[str, Any] = json.loads(fixture.read_text())
    stamp = datetime.now(UTC).replace(microsecond=0).isoformat()
    data["created_at"] = data["updated_at"] = data["processed_at"] = stamp
    data["id"] = 7_000_000 + n
    data["order_number"] = 2000 + n
    data["name"] = f"#{2000 + n}"
    data["currency"] = "VND"
    data["total_price"] = data["current_total_price"] = "1250000"
    data["email"], data["phone"] = email, phone
    for item in data["line_items"]:
        item["price"] = "625000"
    data["customer"].update(
        {"id": 8_000_000 + n, "email": email, "phone": phone, "first_name": first_name,
         "last_name": "Trần"}
    )
    data["customer"]["default_address"].update({"country_code": "VN", "phone": phone})
    data["billing_address"].update({"country_code": "VN", "phone": phone})
    return data


def rows(engine: sa.Engine, sql: str, **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.text(sql), params)]


def messages_of(engine: sa.Engine, email: str) -> list[dict[str, Any]]:
    return rows(
        engine,
        "SELECT m.id, m.channel, m.template, m.status, m.purpose, m.error, m.step_key, "
        "m.fallback_from_id FROM messages m JOIN contacts c ON c.id = m.contact_id "
        "WHERE c.email = :email ORDER BY m.id",
        email=email,
    )


class Shop:
    """The running system: serve + worker, and signed requests to it."""

    def __init__(self, env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        env["PUBLIC_BASE_URL"] = self.base = f"http://127.0.0.1:{self.port}"
        self.env, self.cwd = env, cwd
        self.serve = Proc("serve", ["serve", "--port", str(self.port)], env, cwd, cwd / "serve.log")
        self.worker = Proc(
            "worker", ["worker", "--processes", "1", "--threads", "2"], env, cwd,
            cwd / "worker.log",
        )
        self.procs = (self.serve, self.worker)

    def shopify(self, topic: str, data: dict[str, Any], webhook_id: str) -> None:
        body = json.dumps(data, ensure_ascii=False).encode()
        headers = shopify_headers(SECRETS["SHOPIFY_WEBHOOK_SECRET"], body, topic, webhook_id)
        answer = httpx.post(f"{self.base}/webhooks/shopify", content=body, headers=headers,
                            timeout=10)
        assert answer.status_code == 202, answer.text

    def native(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, ensure_ascii=False).encode()
        headers = native_headers(SECRETS["EVENTS_WEBHOOK_SECRET"], body)
        answer = httpx.post(f"{self.base}/webhooks/events", content=body, headers=headers,
                            timeout=10)
        assert answer.status_code == 202, answer.text

    def wait(self, check: Any, what: str, timeout: float = 40) -> Any:
        return wait_for(check, timeout, what, self.procs)


@contextmanager
def running(env: dict[str, str], cwd: Path, *extra: Path) -> Iterator[Shop]:
    shop = Shop(env, cwd)
    mactl_ok("db", "upgrade", env=env, cwd=cwd)
    try:
        shop.serve.start()
        shop.worker.start()
        mactl_ok("apply", str(REPO / "playbooks"), *map(str, extra), env=env, cwd=cwd)
        wait_http_ok(f"{shop.base}/healthz", shop.serve)
        yield shop
    finally:
        for proc in shop.procs:
            proc.stop()


def test_zalo_no_account_falls_back_to_sms_and_the_next_update_skips_zalo(
    system_env: dict[str, str], providers: Providers, pg_engine: sa.Engine, tmp_path: Path
) -> None:
    email, phone = "hoa.pham@example.vn", "0912 000 101"
    providers.zns.answer = lambda body: {  # type: ignore[method-assign]
        "error": -118, "message": "Zalo account not existed"
    }
    with running(system_env, tmp_path) as shop:
        order = shopify_order(1, email, phone, "Hoa")
        shop.shopify("orders/create", order, "fb-order-1")

        def confirmed() -> list[dict[str, Any]] | None:
            found = [m for m in messages_of(pg_engine, email)
                     if m["template"] == "order_status/confirmation"]
            return found if any(m["channel"] == "sms" and m["status"] == "sent"
                                for m in found) else None

        first = shop.wait(confirmed, "the confirmation to fall back to eSMS")
        zns, sms = first
        assert (zns["channel"], zns["status"]) == ("zalo_zns", "failed")
        assert "-118" in zns["error"] and sms["fallback_from_id"] == zns["id"]
        assert len(providers.zns.hits) == 1
        reach = rows(pg_engine, "SELECT r.channel, r.state, r.provider_code FROM "
                     "channel_reachability r JOIN contacts c ON c.id = r.contact_id "
                     "WHERE c.email = :email", email=email)
        assert reach == [{"channel": "zalo_zns", "state": "unreachable", "provider_code": "-118"}]

        order["financial_status"] = "paid"
        shop.shopify("orders/paid", order, "fb-order-1-paid")

        def paid() -> list[dict[str, Any]] | None:
            found = [m for m in messages_of(pg_engine, email)
                     if m["template"] == "order_status/paid"]
            return found if any(m["status"] == "sent" for m in found) else None

        paid_zns, paid_sms = shop.wait(paid, "the paid notice to go by SMS")
        assert paid_zns["status"] == "failed" and "unreachable on zalo_zns" in paid_zns["error"]
        assert (paid_sms["channel"], paid_sms["status"]) == ("sms", "sent")
        assert len(providers.zns.hits) == 1  # Zalo was not called for the update
        assert len(providers.esms.hits) == 2

        shown = json.loads(mactl_ok("contacts", "show", email, "--json", env=shop.env,
                                    cwd=tmp_path))
        states = {s["channel"]: s for s in shown["channels"]}
        assert states["zalo_zns"]["state"] == "unreachable"
        assert "no Zalo account" in states["zalo_zns"]["reason"]


def test_smtp_550_suppresses_marketing_while_order_email_still_goes(
    system_env: dict[str, str], providers: Providers, pg_engine: sa.Engine, tmp_path: Path
) -> None:
    hard, buyer = "khong.ton.tai@example.vn", "mai.do@example.vn"
    recorder = providers.smtp.recorder

    async def handle_RCPT(server: Any, session: Any, envelope: Any, address: str,
                          options: Any) -> str:
        if address == hard:
            return "550 5.1.1 mailbox does not exist"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    recorder.handle_RCPT = handle_RCPT  # type: ignore[attr-defined]
    flash = tmp_path / "flash_sale.yaml"
    flash.write_text(
        "sequence: flash_sale\npurpose: marketing\ntrigger: {event: contact.updated}\n"
        "steps:\n  - send: {channel: email, template: nurture/guide}\n",
        encoding="utf-8",
    )
    with running(system_env, tmp_path, flash) as shop:
        lead = lead_event(21, hard, "0912 000 201", "Tùng")
        lead["contact"]["consent"] = {"email": {"marketing": True}}
        shop.native(lead)

        def bounced() -> dict[str, Any] | None:
            found = rows(pg_engine, "SELECT reason, scope FROM suppressions WHERE address = :a",
                         a=hard)
            return found[0] if found else None

        assert shop.wait(bounced, "the SMTP 550 to suppress the address") == {
            "reason": "hard_bounce", "scope": "all"
        }
        [welcome] = [m for m in messages_of(pg_engine, hard) if m["channel"] == "email"]
        assert welcome["status"] == "failed" and "SMTP 550" in welcome["error"]

        update = {"id": "upd-21", "type": "contact.updated",
                  "occurred_at": datetime.now(UTC).isoformat(), "contact": {"email": hard}}
        shop.native(update)

        def flash_decided() -> dict[str, Any] | None:
            found = [m for m in messages_of(pg_engine, hard) if m["template"] == "nurture/guide"]
            return found[0] if found and found[0]["status"] not in ("queued", "sending") else None

        promo = shop.wait(flash_decided, "the flash-sale e-mail to be refused")
        assert promo["status"] == "failed" and "address suppressed (hard_bounce)" in promo["error"]

        shop.shopify("orders/create", shopify_order(22, buyer, "0912 000 202", "Mai"), "fb-22")

        def receipt_sent() -> bool:
            return any(m["template"] == "order_status/receipt" and m["status"] == "sent"
                       for m in messages_of(pg_engine, buyer))

        shop.wait(receipt_sent, "the order receipt to the other buyer")
        rcpts = [r for _, to, _ in recorder.messages for r in to]
        assert hard not in rcpts and rcpts.count(buyer) == 1


def test_esms_failure_report_sends_the_email_fallback_once(
    system_env: dict[str, str], providers: Providers, pg_engine: sa.Engine, tmp_path: Path
) -> None:
    email = "quang.vu@example.vn"
    sms_first = tmp_path / "sms_first.yaml"
    sms_first.write_text(
        "sequence: sms_first\npurpose: transactional\ntrigger: {event: lead.captured}\n"
        "steps:\n  - send: {channel: sms, template: lead_capture/code_reminder, "
        "fallback: [email]}\n",
        encoding="utf-8",
    )
    with running(system_env, tmp_path, sms_first) as shop:
        shop.native(lead_event(31, email, "0912 000 301", "Quang"))

        def sms_sent() -> dict[str, Any] | None:
            found = [m for m in messages_of(pg_engine, email)
                     if m["channel"] == "sms" and m["status"] == "sent"]
            return found[0] if found else None

        sms = shop.wait(sms_sent, "the SMS to be sent")
        [hit] = [h for h in providers.esms.hits if h.body.get("RequestId") == str(sms["id"])]
        callback = urlsplit(hit.body["CallbackUrl"])
        report = f"{shop.base}{callback.path}"  # the per-message signed URL we handed eSMS
        params = {"SMSID": f"sms-{sms['id']}", "SendStatus": "4", "SendSuccess": "0",
                  "SendFailed": "1"}
        for _ in range(2):  # eSMS retries its report: the second changes nothing
            answer = httpx.get(report, params=params, timeout=10)
            assert answer.status_code == 200, answer.text

        def fallback_sent() -> list[dict[str, Any]] | None:
            found = [m for m in messages_of(pg_engine, email) if m["fallback_from_id"] == sms["id"]]
            return found if found and found[0]["status"] == "sent" else None

        [fallback] = shop.wait(fallback_sent, "the e-mail fallback to be sent")
        assert fallback["channel"] == "email" and fallback["step_key"].endswith("#fallback:email")
        other = httpx.get(report, params={**params, "SendStatus": "5"}, timeout=10)
        assert other.status_code == 200
        mails = [m for m in providers.smtp.recorder.parsed()
                 if m["Message-ID"].startswith(f"<msg-{fallback['id']}@")]
        assert len(mails) == 1 and mails[0]["To"].addresses[0].addr_spec == email
        assert len([m for m in messages_of(pg_engine, email) if m["fallback_from_id"]]) == 1
        [failed] = [m for m in messages_of(pg_engine, email) if m["id"] == sms["id"]]
        assert failed["status"] == "failed" and f"message {fallback['id']}" in failed["error"]


def test_unsubscribe_stops_marketing_at_once_while_order_status_goes_on(
    system_env: dict[str, str], providers: Providers, pg_engine: sa.Engine, tmp_path: Path
) -> None:
    email, phone = "thu.ngo@example.vn", "0912 000 401"
    with running(system_env, tmp_path) as shop:
        order = shopify_order(41, email, phone, "Thu")  # ordered first: the lead stays a lead
        shop.shopify("orders/create", order, "fb-41")

        def sent(template: str) -> bool:
            return any(m["template"] == template and m["status"] == "sent"
                       for m in messages_of(pg_engine, email))

        shop.wait(lambda: sent("order_status/confirmation"), "the order confirmation")
        shop.native(lead_event(41, email, phone, "Thu"))
        shop.wait(lambda: sent("lead_capture/welcome"), "the welcome e-mail")
        [mail] = [m for m in providers.smtp.recorder.parsed()
                  if m["To"].addresses[0].addr_spec == email and "[QC]" in m["Subject"]]
        link = re.search(r"<(http[^>]+)>", mail["List-Unsubscribe"])
        assert link is not None
        answer = httpx.post(link.group(1), content=b"List-Unsubscribe=One-Click",
                            headers={"Content-Type": "application/x-www-form-urlencoded"},
                            timeout=10)
        assert answer.status_code == 200, answer.text

        states = {
            r["key"]: r for r in rows(
                pg_engine,
                "SELECT s.key, e.state, e.exit_reason FROM enrollments e "
                "JOIN sequences s ON s.id = e.sequence_id JOIN contacts c ON c.id = e.contact_id "
                "WHERE c.email = :email", email=email)
        }
        assert (states["lead_capture"]["state"], states["lead_capture"]["exit_reason"]) == (
            "exited", "unsubscribed")  # at once: answered before any queue ran
        assert states["order_status"]["state"] in ("active", "waiting")

        zns_before = len(providers.zns.hits)
        order["financial_status"] = "paid"
        shop.shopify("orders/paid", order, "fb-41-paid")

        shop.wait(lambda: sent("order_status/paid"), "the order-status paid notice")
        assert len(providers.zns.hits) == zns_before + 1
