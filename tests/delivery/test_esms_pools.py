"""eSMS advertising pools: 29 / 30 / 5,001 rows against a loopback eSMS, DNC, callbacks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from automation.core import clock
from automation.core.config import Settings, get_settings
from automation.core.models import Consent, Contact, Message, Suppression
from automation.core.models_sms import SmsPool
from automation.delivery import dnc, pools
from automation.delivery.channels import close_adapters, get_adapter
from automation.delivery.providers.esms import pool_callback_url
from automation.delivery.send import deliver_batch
from automation.ingest.app import create_app
from channels.segments import count_segments
from tests.delivery.helpers import Loopback

AD_TEMPLATE = """
sms:
  text: "{{ shop.name }}: giam 10% toan bo don hang hom nay, xem {{ shop.url }}/sale"
email:
  subject: "Giảm 10% hôm nay"
  text: "Giảm 10% toàn bộ đơn hàng hôm nay"
"""


class Esms:
    """eSMS's answers: 107 below 30 phones, 124 for a RequestId seen before, else 100."""

    def __init__(self) -> None:
        self.accepted: dict[str, list[str]] = {}

    def __call__(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if "Phones" not in body:
            return 200, {"CodeResult": "100", "SMSID": f"cc-{body.get('RequestId')}"}
        if len(body["Phones"]) < 30:
            return 200, {"CodeResult": "107", "ErrorMessage": "at least 30 numbers"}
        if body["RequestId"] in self.accepted:
            return 200, {"CodeResult": "124", "ErrorMessage": "Request exist"}
        self.accepted[body["RequestId"]] = body["Phones"]
        return 200, {"CodeResult": "100", "CountRegenerate": 0, "SMSID": f"ad-{body['RequestId']}"}


@pytest.fixture
def esms() -> Iterator[tuple[Loopback, Esms]]:
    answers = Esms()
    server = Loopback(answers)
    yield server, answers
    server.close()


@pytest.fixture
def psettings(
    dsettings: Settings,
    esms: tuple[Loopback, Esms],
    monkeypatch: pytest.MonkeyPatch,
    frozen_clock: clock.FrozenClock,
) -> Iterator[Settings]:
    """Delivery settings with pooling on (300 s) against the pooling eSMS loopback."""
    path = Path(dsettings.templates_dir or "") / "t" / "ad.yaml"
    path.write_text(AD_TEMPLATE.lstrip(), encoding="utf-8")
    monkeypatch.setenv("ESMS_AD_POOL_SECONDS", "300")
    monkeypatch.setenv("ESMS_API_BASE", esms[0].url)
    get_settings.cache_clear()
    close_adapters()
    yield get_settings()
    close_adapters()


def rows(session: Session, count: int, fallback: list[str] | None = None,
         channel: str = "sms", purpose: str = "marketing", start: int = 0,
         rendered: dict[str, str] | None = None) -> list[int]:
    """``count`` contacts with SMS marketing consent and one queued row each (bulk)."""
    ids = list(session.scalars(insert(Contact).returning(Contact.id), [
        {"email": f"c{n}@example.vn", "phone": f"+8490{n:07d}", "timezone": "Asia/Ho_Chi_Minh",
         "attributes": {}, "tags": [], "last_inbound_at": {}}
        for n in range(start, start + count)
    ]))
    session.execute(insert(Consent), [
        {"contact_id": c, "channel": ch, "purpose": "marketing", "status": "granted",
         "source": "test"} for c in ids for ch in ("sms", "email", "zalo")
    ])
    mids = list(session.scalars(insert(Message).returning(Message.id), [
        {"step_key": "s1", "contact_id": c, "channel": channel, "purpose": purpose,
         "template": "t/ad", "status": "queued", "attempts": 0, "rendered": rendered or {},
         "links": {},
         "fallback": fallback or []}
        for c in ids
    ]))
    session.commit()
    return mids


def send(session: Session, ids: list[int], settings: Settings) -> None:
    for start in range(0, len(ids), 1000):
        deliver_batch(session, ids[start : start + 1000], settings=settings)


def test_parts_are_even_and_never_below_the_minimum() -> None:
    assert [len(p) for p in pools.parts(list(range(5001)), 5000)] == [2501, 2500]
    assert [len(p) for p in pools.parts(list(range(10000)), 5000)] == [5000, 5000]
    assert [len(p) for p in pools.parts(list(range(30)), 5000)] == [30]


def flush(session: Session, settings: Settings) -> pools.BatchResult:
    adapter, provider = get_adapter("sms", settings)
    assert isinstance(adapter, pools.Advertiser)
    return pools.flush_due(session, clock.now(), adapter, provider, settings)


def statuses(session: Session, ids: list[int]) -> dict[str, int]:
    session.expire_all()
    out: dict[str, int] = {}
    for status in session.scalars(select(Message.status).where(Message.id.in_(ids))):
        out[status] = out.get(status, 0) + 1
    return out


def ad_hits(server: Loopback) -> list[dict[str, Any]]:
    return [h.body for h in server.hits if h.path.endswith("/SendMultipleSMSBrandname_json/")]


def test_pool_of_30_waits_its_window_then_goes_as_one_advertising_request(
    session: Session, psettings: Settings, esms: tuple[Loopback, Esms],
    frozen_clock: clock.FrozenClock,
) -> None:
    import json

    from typer.testing import CliRunner

    from admin_cli.main import app

    server, _ = esms
    ids = rows(session, 30)
    send(session, ids, psettings)
    assert statuses(session, ids) == {"pooled": 30} and server.hits == []
    answer = CliRunner().invoke(app, ["doctor", "--json"])
    doctor = json.loads(answer.output)
    assert doctor["sms_pools"] == {"open_pools": 1, "rows_waiting": 30, "dnc_numbers": 0}
    frozen_clock.advance(timedelta(seconds=299))
    flush(session, psettings)
    assert server.hits == []  # still inside the window
    frozen_clock.advance(timedelta(seconds=1))
    from automation.runtime.tasks import TASKS

    task = next(t for t in TASKS if t.name == "sms_pools")
    assert task.fn(session, clock.now()) == 30  # the scheduler's pass sends it
    (body,) = ad_hits(server)
    pool = session.scalars(select(SmsPool)).one()
    assert body["SmsType"] == "1" and body["RequestId"] == str(pool.id)
    assert sorted(body["Phones"]) == [f"090{n:07d}" for n in range(30)]
    assert body["CallbackUrl"] == pool_callback_url(pool.id, psettings)
    content = body["Content"]
    assert content.startswith("[QC] Shop: giam 10%") and "/t/p/" in content
    assert content.endswith(f"Tu choi QC: {psettings.public_base_url}/u/sms")
    assert body["IsUnicode"] == "0" and count_segments(content).segments == 1
    assert statuses(session, ids) == {"sent": 30}
    sent = session.scalars(select(Message).where(Message.id.in_(ids))).all()
    assert {m.provider_message_id for m in sent} == {f"ad-{pool.id}"}
    assert {m.rendered["text"] for m in sent} == {content}
    assert pool.status == "sent" and pool.provider_message_ids == [f"ad-{pool.id}"]


def test_pool_of_29_sends_nothing_and_each_row_falls_back_after_the_window(
    session: Session, psettings: Settings, esms: tuple[Loopback, Esms],
    frozen_clock: clock.FrozenClock,
) -> None:
    server, _ = esms
    ids = rows(session, 29, fallback=["email"])
    send(session, ids, psettings)
    frozen_clock.advance(timedelta(seconds=300))
    result = flush(session, psettings)
    assert ad_hits(server) == [] and len(result.fallbacks) == 29
    assert statuses(session, ids) == {"skipped": 29}
    row = session.get(Message, ids[0])
    assert row is not None and row.error is not None
    assert row.error.startswith("pool below 30 phones; fallback -> email")
    emails = session.scalars(select(Message).where(Message.fallback_from_id.in_(ids))).all()
    assert len(emails) == 29 and {m.channel for m in emails} == {"email"}
    assert session.scalars(select(SmsPool.status)).one() == "expired"


def test_a_step_that_says_pool_wait_keeps_its_rows_for_another_window(
    session: Session, psettings: Settings, esms: tuple[Loopback, Esms],
    frozen_clock: clock.FrozenClock,
) -> None:
    server, _ = esms
    ids = rows(session, 29, fallback=["email"], rendered={"pool": "wait"})
    send(session, ids, psettings)
    frozen_clock.advance(timedelta(seconds=300))
    result = flush(session, psettings)
    assert ad_hits(server) == [] and result.fallbacks == []
    assert statuses(session, ids) == {"pooled": 29}
    assert session.scalars(select(SmsPool.status)).one() == "open"
    late = rows(session, 1, start=29)  # joins the same open pool: 30 phones
    send(session, late, psettings)
    frozen_clock.advance(timedelta(seconds=300))
    flush(session, psettings)
    (body,) = ad_hits(server)
    assert len(body["Phones"]) == 30
    assert statuses(session, ids + late) == {"sent": 30}


def test_send_step_pool_option_parses_and_names_a_bad_value() -> None:
    from automation.core.errors import DefinitionError
    from automation.sequences.schema import parse_sequence_text

    text = (
        "sequence: promo\ntrigger: {event: order.created}\nsteps:\n"
        "  - send: {channel: sms, template: winback/offer, fallback: [email], pool: %s}\n"
    )
    (step,) = parse_sequence_text(text % "wait").steps
    assert step.pool_wait and step.outbox_rendered() == {"pool": "wait"}
    (step,) = parse_sequence_text(text % "fallback").steps
    assert not step.pool_wait and step.outbox_rendered() == {}
    with pytest.raises(DefinitionError) as info:
        parse_sequence_text(text % "later")
    assert "pool 'later' is not known" in str(info.value) and ":4:" in str(info.value)


def test_pool_of_5001_is_split_into_two_requests_with_their_own_request_ids(
    session: Session, psettings: Settings, esms: tuple[Loopback, Esms],
) -> None:
    server, answers = esms
    ids = rows(session, 5001)
    started = time.monotonic()
    deliver_batch(session, ids, settings=psettings)  # 5,001 joined: due at the batch's end
    elapsed = time.monotonic() - started
    hits = ad_hits(server)
    pool_id = session.scalars(select(SmsPool.id)).one()
    assert sorted(len(h["Phones"]) for h in hits) == [2500, 2501]
    assert {h["RequestId"] for h in hits} == {f"{pool_id}.{ids[0]}", f"{pool_id}.{ids[2501]}"}
    assert statuses(session, ids) == {"sent": 5001}
    assert len({p for phones in answers.accepted.values() for p in phones}) == 5001
    print(f"\n5,001 rows composed, pooled and sent in {elapsed:.1f}s")


def test_a_pool_resent_after_a_crash_is_refused_as_duplicate_and_counted_once(
    session: Session, psettings: Settings, esms: tuple[Loopback, Esms],
    frozen_clock: clock.FrozenClock,
) -> None:
    server, answers = esms
    ids = rows(session, 30)
    send(session, ids, psettings)
    frozen_clock.advance(timedelta(seconds=300))
    adapter, provider = get_adapter("sms", psettings)

    class DiesAfterTheCall:
        def advertise(self, *args: Any) -> Any:
            adapter.advertise(*args)  # type: ignore[attr-defined]
            raise SystemExit("worker killed before the commit")

    with pytest.raises(SystemExit):
        pools.flush_due(session, clock.now(), DiesAfterTheCall(), provider, psettings)
    session.rollback()
    assert statuses(session, ids) == {"pooled": 30}
    assert flush(session, psettings).sent == []  # claimed by the dead worker: not yet
    frozen_clock.advance(timedelta(seconds=psettings.outbox_stale_seconds))
    assert len(flush(session, psettings).sent) == 30
    codes = [h.body["RequestId"] for h in server.hits]
    assert len(codes) == 2 and len(set(codes)) == 1 and len(answers.accepted) == 1
    assert statuses(session, ids) == {"sent": 30}


def test_dnc_listed_number_is_skipped_for_sms_and_zalo_marketing_only(
    session: Session, psettings: Settings, esms: tuple[Loopback, Esms],
) -> None:
    sms = rows(session, 2, fallback=["email"])
    zns = rows(session, 1, channel="zalo_zns", start=10)
    care = rows(session, 1, purpose="transactional", start=20)
    dnc.replace_list(session, ["+84900000000", "+84900000010", "+84900000020"])
    session.commit()
    send(session, sms + zns + care, psettings)
    session.expire_all()
    listed, other = (session.get(Message, i) for i in sms)
    assert listed is not None and listed.status == "skipped"
    assert listed.error is not None and listed.error.startswith("dnc; fallback -> email")
    assert other is not None and other.status == "pooled"
    zalo = session.get(Message, zns[0])
    assert zalo is not None and (zalo.status, zalo.error) == ("skipped", "dnc")
    assert statuses(session, care) == {"sent": 1}  # transactional: not advertising


def test_number_listed_while_pooled_is_dropped_at_the_flush(
    session: Session, psettings: Settings, esms: tuple[Loopback, Esms],
    frozen_clock: clock.FrozenClock,
) -> None:
    server, _ = esms
    ids = rows(session, 31)
    send(session, ids, psettings)
    dnc.replace_list(session, ["+84900000030"])
    session.commit()
    frozen_clock.advance(timedelta(seconds=300))
    flush(session, psettings)
    (body,) = ad_hits(server)
    assert len(body["Phones"]) == 30 and "0900000030" not in body["Phones"]
    row = session.get(Message, ids[-1])
    assert row is not None and (row.status, row.error) == ("skipped", "dnc")


def test_promo_callback_maps_to_every_row_of_the_pool(
    session: Session, psettings: Settings, esms: tuple[Loopback, Esms],
    frozen_clock: clock.FrozenClock,
) -> None:
    ids = rows(session, 30)
    send(session, ids, psettings)
    frozen_clock.advance(timedelta(seconds=300))
    flush(session, psettings)
    pool = session.scalars(select(SmsPool)).one()
    url = pool_callback_url(pool.id, psettings).removeprefix(psettings.public_base_url)
    query = {"SMSID": f"ad-{pool.id}", "SendStatus": "5", "SendSuccess": "30",
             "SendFailed": "0", "TotalReceiver": "30", "TypeId": "1", "RequestId": str(pool.id)}
    with TestClient(create_app()) as client:
        assert client.get(url, params=query).status_code == 200
        forged = url.rsplit("/", 1)[0] + "/" + "0" * 32
        assert client.get(forged, params=query).status_code == 401
    assert statuses(session, ids) == {"delivered": 30}


def test_sms_optout_page_stops_a_pooled_row_at_once(
    session: Session, psettings: Settings, esms: tuple[Loopback, Esms],
    frozen_clock: clock.FrozenClock,
) -> None:
    server, _ = esms
    ids = rows(session, 31)
    send(session, ids, psettings)
    with TestClient(create_app()) as client:
        assert 'name="phone"' in client.get("/u/sms").text
        bad = client.post("/u/sms", content="phone=12", headers=FORM)
        assert bad.status_code == 422 and 'id="error"' in bad.text
        step = client.post("/u/sms", content="phone=0900000005", headers=FORM)
        assert step.status_code == 200 and 'id="confirm"' in step.text
        token = step.text.split('name="token" value="')[1].split('"')[0]
        assert session.scalar(select(Suppression.id)) is None  # nothing until confirmed
        done = client.post("/u/sms", content=f"token={token}", headers=FORM)
        assert done.status_code == 200 and 'id="done"' in done.text
        assert client.post("/u/sms", content="token=x.y", headers=FORM).status_code == 404
    session.expire_all()
    row = session.get(Message, ids[5])
    assert row is not None and row.status == "skipped"
    consent = session.scalar(select(Consent.status).where(
        Consent.contact_id == row.contact_id, Consent.channel == "sms"))
    assert consent == "denied"
    frozen_clock.advance(timedelta(seconds=300))
    flush(session, psettings)
    (body,) = ad_hits(server)
    assert len(body["Phones"]) == 30 and "0900000005" not in body["Phones"]


def test_pool_click_link_redirects_and_counts_on_the_pool(
    session: Session, psettings: Settings, esms: tuple[Loopback, Esms],
) -> None:
    ids = rows(session, 30)
    send(session, ids, psettings)
    pool = session.scalars(select(SmsPool)).one()
    link = next(w for w in pool.content.split() if "/t/p/" in w)
    path = link.removeprefix(psettings.public_base_url)
    with TestClient(create_app()) as client:
        answer = client.get(path, follow_redirects=False)
        assert answer.status_code == 302
        assert answer.headers["location"] == f"{psettings.shop_url}/sale"
        assert client.get(path[:-3] + "abc", follow_redirects=False).status_code == 404
    session.expire_all()
    assert session.get(SmsPool, pool.id).clicks == 1  # type: ignore[union-attr]


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_mactl_suppressions_import_dnc_replaces_the_list_and_lists_it(
    session: Session, psettings: Settings, tmp_path: Path,
) -> None:
    import json

    from typer.testing import CliRunner

    from admin_cli.main import app

    runner = CliRunner()
    lines = tmp_path / "dnc.txt"
    lines.write_text("0912 345 678\n\n+84 98 765 4321\n0912345678\n", encoding="utf-8")
    result = runner.invoke(app, ["suppressions", "import", "--dnc", str(lines), "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["dnc"] == 2
    table = tmp_path / "dnc.csv"
    table.write_text("name,phone\nAn,0933 111 222\n", encoding="utf-8")
    assert runner.invoke(app, ["suppressions", "import", "--dnc", str(table)]).exit_code == 0
    listed = runner.invoke(app, ["suppressions", "list", "--dnc", "--json"])
    assert json.loads(listed.output) == ["+84933111222"]  # the re-import replaced the list
    bad = tmp_path / "bad.txt"
    bad.write_text("0912345678\nkhong co so\n", encoding="utf-8")
    refused = runner.invoke(app, ["suppressions", "import", "--dnc", str(bad)])
    assert refused.exit_code != 0 and f"{bad}:2" in refused.output
    assert "Traceback" not in refused.output
    assert json.loads(runner.invoke(app, ["suppressions", "list", "--dnc", "--json"]).output) == [
        "+84933111222"
    ]  # nothing stored half-way


PERSONAL_SEQUENCE = """
sequence: promo_personal
name: Khuyen mai
purpose: marketing
trigger: {event: order.created}
steps:
  - send: {channel: sms, template: t/promo}
"""


def test_apply_warns_in_yellow_when_a_marketing_sms_cannot_pool(
    session: Session, psettings: Settings, tmp_path: Path,
) -> None:
    from typer.testing import CliRunner

    from admin_cli.main import app
    from automation.apply import apply_paths

    shipped = apply_paths(session, ["playbooks"], dry_run=True)
    assert shipped.warnings == []  # the shipped marketing SMS are written to pool
    path = tmp_path / "promo_personal.yaml"
    path.write_text(PERSONAL_SEQUENCE.lstrip(), encoding="utf-8")
    result = CliRunner().invoke(app, ["apply", "--dry-run", str(path)])
    assert result.exit_code == 0, result.output  # a warning, not an error
    warning = next(line for line in result.output.splitlines() if line.startswith("warning:"))
    assert f"{path}:6: step" in warning and "'t/promo' uses contact" in warning
    assert "can never pool" in warning


@pytest.fixture
def pool_worker(
    dsettings: Settings, esms: tuple[Loopback, Esms], redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Settings]:
    """A Dramatiq worker on real Redis, pooling with a 1-second window, real clock."""
    import dramatiq
    import redis

    from automation.runtime.broker import configure_broker

    path = Path(dsettings.templates_dir or "") / "t" / "ad.yaml"
    path.write_text(AD_TEMPLATE.lstrip(), encoding="utf-8")
    for key, value in {"ESMS_AD_POOL_SECONDS": "1", "ESMS_API_BASE": esms[0].url,
                       "REDIS_URL": redis_url,
                       "SEND_WINDOWS": '{"sms": "00:00-00:00"}'}.items():  # real clock: any hour
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    close_adapters()
    settings = get_settings()
    redis.Redis.from_url(redis_url).flushdb()
    import automation.runtime.send_actors  # noqa: F401  declare the actors

    broker = configure_broker(settings)
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    yield settings
    worker.stop()
    broker.close()
    monkeypatch.delenv("REDIS_URL")
    get_settings.cache_clear()
    configure_broker(get_settings())
    close_adapters()


@pytest.mark.parametrize("backend", ["postgres"], indirect=False)
def test_worker_pools_rows_and_the_scheduler_pass_sends_the_pool(
    session: Session, pool_worker: Settings, esms: tuple[Loopback, Esms],
) -> None:
    from automation.runtime.dispatch import enqueue_messages
    from automation.runtime.tasks import TASKS

    server, _ = esms
    task = next(t for t in TASKS if t.name == "sms_pools")
    ids = rows(session, 40)
    started = time.monotonic()
    assert enqueue_messages(session, ids) >= 1
    deadline = started + 20
    while statuses(session, ids).get("pooled", 0) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    pooled_after = time.monotonic() - started
    assert statuses(session, ids) == {"pooled": 40} and ad_hits(server) == []
    while statuses(session, ids).get("sent", 0) < 40 and time.monotonic() < deadline:
        task.fn(session, clock.now())  # the scheduler's pass
        time.sleep(0.2)
    waited = time.monotonic() - started
    (body,) = ad_hits(server)
    assert len(body["Phones"]) == 40 and statuses(session, ids) == {"sent": 40}
    joined = session.scalars(select(pools.SmsPoolMember.joined_at)).all()
    pool = session.scalars(select(SmsPool)).one()
    assert pool.sent_at is not None and pool.sent_at >= max(joined)
    print(f"\n40 rows pooled by the worker in {pooled_after:.2f}s, sent after {waited:.2f}s "
          f"(window 1 s, scheduler pass every 0.2 s)")


def test_account_error_keeps_the_pool_and_tries_it_again_after_the_backoff(
    session: Session, psettings: Settings, esms: tuple[Loopback, Esms],
    frozen_clock: clock.FrozenClock,
) -> None:
    server, answers = esms
    ids = rows(session, 30)
    send(session, ids, psettings)
    frozen_clock.advance(timedelta(seconds=300))
    server.scripted.append((200, {"CodeResult": "103", "ErrorMessage": "balance too low"}))
    assert len(flush(session, psettings).retry) == 30
    assert statuses(session, ids) == {"pooled": 30}
    pool = session.scalars(select(SmsPool)).one()
    assert pool.status == "sending" and "103" in (pool.error or "")
    assert flush(session, psettings).sent == []  # not before the backoff (1 s here)
    frozen_clock.advance(timedelta(seconds=1))
    assert len(flush(session, psettings).sent) == 30
    assert len(ad_hits(server)) == 2 and len(answers.accepted) == 1


def test_a_pool_due_after_22h_sends_nothing_and_its_rows_wait_for_7h(
    session: Session, psettings: Settings, esms: tuple[Loopback, Esms],
    frozen_clock: clock.FrozenClock,
) -> None:
    from datetime import UTC, datetime

    server, _ = esms
    frozen_clock.set(datetime(2026, 11, 2, 14, 58, tzinfo=UTC))  # 21:58 in Ho Chi Minh City
    ids = rows(session, 30)
    send(session, ids, psettings)
    assert statuses(session, ids) == {"pooled": 30}
    frozen_clock.advance(timedelta(seconds=300))  # 22:03: the window ended after 22:00
    assert len(flush(session, psettings).deferred) == 30
    assert ad_hits(server) == [] and statuses(session, ids) == {"deferred": 30}
    row = session.get(Message, ids[0])
    assert row is not None and row.not_before == datetime(2026, 11, 3, 0, 0, tzinfo=UTC)
    assert row.error is not None and "outside allowed hours 07:00-22:00" in row.error
    frozen_clock.set(datetime(2026, 11, 3, 0, 0, tzinfo=UTC))  # 07:00: they pool again
    send(session, ids, psettings)
    frozen_clock.advance(timedelta(seconds=300))
    flush(session, psettings)
    (body,) = ad_hits(server)
    assert len(body["Phones"]) == 30 and statuses(session, ids) == {"sent": 30}
