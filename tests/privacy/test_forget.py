"""`forget_contact`: personal data erased, aggregates kept, the address never messaged again."""

from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin_cli.output import json_text
from automation.contacts.identity import upsert_contact
from automation.contacts.importer import import_rows
from automation.core import clock
from automation.core.config import Settings
from automation.core.events import ContactData
from automation.core.models import (
    Cart,
    Consent,
    Contact,
    ContactIdentity,
    Enrollment,
    Event,
    Message,
    MessageEvent,
    Order,
    SegmentMembership,
    Suppression,
)
from automation.core.models_inbox import InboxDelivery
from automation.core.models_privacy import Erasure
from automation.delivery.send import deliver_batch
from automation.privacy.export import export_contact
from automation.privacy.forget import forget_contact
from automation.privacy.hashing import address_hash
from tests.delivery.helpers import Loopback, consent, contact, message
from tests.delivery.test_policy import NOON
from tests.privacy.conftest import EMAIL, LOCAL_PHONE, PHONE


def _forget(session: Session, contact_id: int) -> Erasure:
    erasure = forget_contact(session, session.get_one(Contact, contact_id))
    session.commit()
    return erasure


def test_forget_erases_personal_data_and_keeps_aggregates(
    settings: Settings, session: Session, person: dict[str, int]
) -> None:
    erasure = _forget(session, person["contact"])
    session.expire_all()
    lan = session.get_one(Contact, person["contact"])
    assert (lan.email, lan.phone, lan.first_name, lan.last_name) == (None, None, None, None)
    assert (lan.attributes, lan.tags) == ({}, [])
    assert (lan.orders_count, lan.total_spent) == (1, 1_250_000)  # aggregates kept
    assert session.get_one(Order, person["order"]).total == 1_250_000
    assert session.scalar(select(func.count()).select_from(ContactIdentity)) == 0
    assert session.scalar(select(func.count()).select_from(Consent)) == 0
    msg = session.get_one(Message, person["message"])
    assert (msg.address, msg.rendered, msg.links, msg.status) == (None, {}, {}, "delivered")
    props = session.get_one(Event, person["event"]).payload["properties"]
    assert props == {
        "total": 1_250_000,
        "items": [{"title": "Áo dài lụa", "quantity": 1}],
    }
    result = session.scalars(select(MessageEvent)).one()
    assert result.payload == {"event": "delivered"}
    assert session.get_one(Cart, person["cart"]).recovery_url is None
    assert session.get_one(Enrollment, person["enrollment"]).context == {"cart_total": 1_250_000}
    assert session.scalar(select(func.count()).select_from(SegmentMembership)) == 1  # kept
    mine = session.get_one(InboxDelivery, person["inbox_mine"])
    other = session.get_one(InboxDelivery, person["inbox_other"])
    assert (mine.body, mine.headers) == (b"", {})  # matched case-insensitively, local phone
    assert b"minh@example.vn" in other.body  # someone else's payload is untouched
    stored = {
        (s.channel, s.address, s.reason, s.scope) for s in session.scalars(select(Suppression))
    }
    assert ("sms", PHONE, "unsubscribed", "marketing") not in stored
    assert ("email", address_hash(EMAIL), "erased", "all") in stored
    assert ("zalo", address_hash(PHONE), "erased", "all") in stored
    record = session.get_one(Erasure, erasure.id)
    assert record.contact_id == lan.id and record.erased_at is not None
    assert record.counts["messages"] == 1 and record.counts["inbox"] == 1
    # Nothing held about her names her any more.
    everything = json_text(export_contact(session, lan)).lower()
    for personal in (EMAIL, PHONE, LOCAL_PHONE, "nguyễn", "hàng bạc", "cust-42"):
        assert personal.lower() not in everything
    assert PHONE not in json.dumps([s.address for s in session.scalars(select(Suppression))])


def test_a_forgotten_address_is_never_messaged_again(
    session: Session,
    dsettings: Settings,
    zns_server: Loopback,
    frozen_clock: clock.FrozenClock,
    person: dict[str, int],
) -> None:
    frozen_clock.set(NOON)
    _forget(session, person["contact"])
    # Someone types her number in again by hand (no upsert check on this path).
    again = contact(session, 7, phone=PHONE, email=None)
    consent(session, again, "zalo", "granted", purpose="transactional")
    order_update = message(session, again, "zalo_zns", purpose="transactional")
    session.commit()
    result = deliver_batch(session, [order_update.id])
    session.refresh(order_update)
    assert result.skipped == [order_update.id]
    assert order_update.status == "skipped" and "erased" in (order_update.error or "")
    assert zns_server.hits == []


def test_upsert_does_not_collect_a_forgotten_address_again(
    settings: Settings, session: Session, person: dict[str, int]
) -> None:
    _forget(session, person["contact"])
    granted = {("email", "marketing"): True, ("sms", "marketing"): True}
    assert (
        upsert_contact(session, "shopify", ContactData(email=EMAIL.upper(), consents=granted))
        is None
    )
    data = ContactData(external_id="cust-99", email=EMAIL, phone=LOCAL_PHONE, consents=granted)
    back = upsert_contact(session, "shopify", data)
    assert back is not None and (back.email, back.phone) == (None, None)
    assert session.scalars(select(Consent).where(Consent.contact_id == back.id)).all() == []
    fresh = upsert_contact(session, "shopify", ContactData(email="minh@example.vn"))
    assert fresh is not None and fresh.email == "minh@example.vn"  # others are unaffected


def test_import_refuses_a_forgotten_address_with_a_row_error(
    settings: Settings, session: Session, person: dict[str, int]
) -> None:
    _forget(session, person["contact"])
    rows = [(2, {"email": EMAIL, "first_name": "Lan"}), (3, {"email": "minh@example.vn"})]
    report = import_rows(session, rows)
    assert (report.created, report.failed) == (1, 1)
    error = report.errors[0]
    assert (error.row, error.column) == (2, "email") and "erased" in error.problem
    assert session.scalar(select(func.count()).where(Contact.email == EMAIL)) == 0
