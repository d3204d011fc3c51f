"""Abandoned carts are marked and their events processed a batch at a time; a cart whose
event fails to process is redone alone, the others' recovery still starts."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.contacts.carts import detect_abandoned_carts
from automation.core import processing
from automation.core.clock import FrozenClock
from automation.core.models import Cart, Contact, Enrollment, Event
from automation.runtime import handlers
from tests.sequences.helpers import apply_yaml, make_contact

CART = """
sequence: cart_recovery
trigger: {event: cart.abandoned}
reentry: always
steps:
  - wait: 1h
  - send: {channel: email, template: cart_recovery/reminder}
"""
unlucky: dict[str, str | None] = {"email": None}


def trap(session: Session, event: Event) -> None:
    """Fails on the cart.abandoned event of one contact, like a handler with a bug."""
    contact = session.get(Contact, event.contact_id) if event.contact_id else None
    if event.type == "cart.abandoned" and contact is not None and contact.email == unlucky["email"]:
        raise RuntimeError("template store unreachable")


@pytest.fixture
def trapped() -> Iterator[None]:
    table = list(handlers.HANDLERS)
    processing.use_handlers([*table[:3], trap, *table[3:]], handlers.PREPARE, handlers.ROUND_FORMS)
    yield
    handlers.install()
    unlucky["email"] = None


def _carts(session: Session, t0: object, count: int) -> list[int]:
    contacts = [make_contact(session, email=f"cart{n}@example.vn") for n in range(count)]
    for n, contact_id in enumerate(contacts):
        session.add(Cart(source="shopify", external_id=f"chk-{n}", contact_id=contact_id,
                         total=100000, items=[], updated_at=t0))
    session.commit()
    return contacts


def test_a_batch_of_abandoned_carts_starts_every_recovery_in_one_pass(
    session: Session, frozen_clock: FrozenClock, trapped: None
) -> None:
    apply_yaml(session, CART)
    contacts = _carts(session, frozen_clock.now(), 5)
    now = frozen_clock.now() + timedelta(hours=2)
    assert detect_abandoned_carts(session, now) == 5
    session.expire_all()
    events = list(session.scalars(select(Event).where(Event.type == "cart.abandoned")))
    assert sorted(e.contact_id for e in events) == contacts
    assert all(e.processed_at is not None and e.failed_handlers is None for e in events)
    enrolled = session.scalars(select(Enrollment.contact_id).order_by(Enrollment.contact_id))
    assert list(enrolled) == contacts
    assert detect_abandoned_carts(session, now + timedelta(hours=1)) == 0


def test_a_failing_event_is_isolated_and_the_other_carts_recover(
    session: Session, frozen_clock: FrozenClock, trapped: None, caplog: pytest.LogCaptureFixture
) -> None:
    apply_yaml(session, CART)
    contacts = _carts(session, frozen_clock.now(), 4)
    unlucky["email"] = "cart2@example.vn"
    now = frozen_clock.now() + timedelta(hours=2)
    with caplog.at_level(logging.INFO, logger="automation.core.processing"):
        assert detect_abandoned_carts(session, now) == 4
    assert "batch redone one item at a time" in caplog.text
    session.expire_all()
    abandoned = session.scalar(
        select(func.count()).select_from(Cart).where(Cart.abandoned_at.is_not(None))
    )
    assert abandoned == 4  # every cart marked once, the failing one too
    [failed] = session.scalars(select(Event).where(Event.failed_handlers.is_not(None)))
    assert failed.contact_id == contacts[2] and failed.attempts == 1
    assert "template store unreachable" in (failed.failure or "")
    assert failed.processed_at is None  # waits for the next pass, handler by handler
    # each handler is isolated: the sequence triggers after the trap still ran for it
    enrolled = set(session.scalars(select(Enrollment.contact_id)))
    assert enrolled == set(contacts)
