"""Memberships: entered/exited times, emitted events, incremental evaluation, time-based refresh."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.models import Event, Segment, SegmentMembership
from automation.segments import (
    RuleError,
    apply_segments,
    evaluate_contact,
    in_segment,
    load_segment_text,
    refresh_segment,
    refresh_time_based_segments,
)
from automation.segments.handlers import on_event
from tests.segments.data import NOW, add_event, ago, make_contact


def _apply(session: Session, *docs: str) -> dict[str, Segment]:
    defs = [load_segment_text(doc, f"s{i}.yaml") for i, doc in enumerate(docs)]
    return {segment.key: segment for _, segment in apply_segments(session, defs)}


BUYERS = "segment: buyers\nname: Đã mua\nrule: {field: orders_count, gte: 1}\n"
LAPSED = "segment: lapsed\nname: Ngủ quên\nrule: {field: last_order_at, more_than_ago: 90d}\n"


def _transitions(session: Session) -> list[tuple[str, int | None, str]]:
    rows = session.execute(
        select(Event.type, Event.contact_id, Event.payload).order_by(Event.id)
    ).all()
    return [(t, c, p["properties"]["segment"]) for t, c, p in rows if t.startswith("segment.")]


def test_refresh_writes_memberships_and_events(session: Session) -> None:
    buyers = _apply(session, BUYERS)["buyers"]
    a = make_contact(session, email="a@x.vn", orders_count=1)
    b = make_contact(session, email="b@x.vn", orders_count=0)
    assert refresh_segment(session, buyers, NOW) == (1, 0)
    stint = session.scalar(select(SegmentMembership).where(SegmentMembership.contact_id == a.id))
    assert stint is not None and stint.entered_at == NOW and stint.exited_at is None
    assert buyers.refreshed_at == NOW
    assert refresh_segment(session, buyers, NOW + timedelta(hours=1)) == (0, 0)  # no change
    assert _transitions(session) == [("segment.entered", a.id, "buyers")]

    a.orders_count, b.orders_count = 0, 2
    later = NOW + timedelta(days=1)
    assert refresh_segment(session, buyers, later) == (1, 1)
    session.refresh(stint)
    assert stint.exited_at == later
    assert in_segment(session, "buyers", b.id) and not in_segment(session, "buyers", a.id)

    a.orders_count = 3  # back in: a second stint, a second entered event
    assert refresh_segment(session, buyers, later + timedelta(days=1)) == (1, 0)
    stints = session.scalars(
        select(SegmentMembership).where(SegmentMembership.contact_id == a.id)
    ).all()
    assert len(stints) == 2 and sum(s.exited_at is None for s in stints) == 1
    assert _transitions(session) == [
        ("segment.entered", a.id, "buyers"),
        ("segment.entered", b.id, "buyers"),
        ("segment.exited", a.id, "buyers"),
        ("segment.entered", a.id, "buyers"),
    ]
    event = session.scalars(select(Event).where(Event.type == "segment.exited")).one()
    assert event.source == "internal" and event.occurred_at == later
    assert event.payload["properties"]["membership_id"] == stint.id
    session.commit()


def test_evaluate_contact_follows_dependencies(session: Session) -> None:
    # a_loyal references z_buyers: key order would evaluate it first, dependency order must not
    segments = _apply(
        session,
        "segment: z_buyers\nname: Mua\nrule: {field: orders_count, gte: 1}\n",
        "segment: a_loyal\nname: Trung thành\nrule:\n  all:\n    - {in_segment: z_buyers}\n"
        "    - {field: total_spent, gte: 1000000}\n",
    )
    contact = make_contact(session, email="c@x.vn", orders_count=1, total_spent=2_000_000)
    assert evaluate_contact(session, contact.id, NOW) == [
        ("z_buyers", "entered"),
        ("a_loyal", "entered"),
    ]
    assert evaluate_contact(session, contact.id, NOW) == []  # writes only changes
    contact.orders_count = 0
    assert evaluate_contact(session, contact.id, NOW + timedelta(minutes=5)) == [
        ("z_buyers", "exited"),
        ("a_loyal", "exited"),
    ]
    assert segments["a_loyal"].time_based is False


def test_time_based_refresh_writes_only_changes(session: Session) -> None:
    segments = _apply(session, BUYERS, LAPSED)
    assert segments["lapsed"].time_based and not segments["buyers"].time_based
    contact = make_contact(session, email="d@x.vn", orders_count=1, last_order_at=ago(days=89))
    assert refresh_time_based_segments(session, NOW) == 0
    assert segments["buyers"].refreshed_at is None  # not time-based: left to events
    assert refresh_time_based_segments(session, NOW + timedelta(days=2)) == 1
    assert in_segment(session, "lapsed", contact.id)
    assert refresh_time_based_segments(session, NOW + timedelta(days=3)) == 0
    entered = session.scalars(select(Event).where(Event.type == "segment.entered")).all()
    assert [e.payload["properties"]["segment"] for e in entered] == ["lapsed"]


def test_time_based_is_inherited_through_in_segment(session: Session) -> None:
    segments = _apply(
        session, LAPSED, "segment: lapsed_vip\nname: VIP ngủ quên\nrule: {in_segment: lapsed}\n"
    )
    assert segments["lapsed_vip"].time_based


def test_unknown_reference_and_cycles_are_rejected(session: Session) -> None:
    with pytest.raises(RuleError) as info:
        _apply(session, "segment: a\nname: A\nrule:\n  in_segment: nope\n")
    assert str(info.value).startswith("s0.yaml:4: in_segment: unknown segment 'nope'")
    with pytest.raises(RuleError) as info:
        _apply(
            session,
            "segment: a\nname: A\nrule: {in_segment: b}\n",
            "segment: b\nname: B\nrule:\n  any:\n    - {in_segment: a}\n",
        )
    assert "cycle" in str(info.value) and "remove one of the in_segment" in str(info.value)


def test_handler_evaluates_on_events_and_skips_segment_events(session: Session) -> None:
    _apply(session, "segment: leads\nname: Lead\nrule: {performed: lead.captured}\n")
    contact = make_contact(session, email="e@x.vn")
    lead = add_event(session, contact, "lead.captured", NOW, form="popup")
    on_event(session, lead)
    assert in_segment(session, "leads", contact.id)
    entered = session.scalars(select(Event).where(Event.type == "segment.entered")).one()
    session.delete(lead)  # re-evaluating now would exit the contact
    session.flush()
    on_event(session, entered)  # segment.* events are skipped: no loops
    assert in_segment(session, "leads", contact.id)
    assert session.scalars(select(Event).where(Event.type.like("segment.%"))).all() == [entered]


def test_time_based_refresh_waits_for_segment_refresh_minutes(session: Session) -> None:
    _apply(session, BUYERS, LAPSED)
    contact = make_contact(session, email="e@x.vn", orders_count=1, last_order_at=ago(days=89))
    start = NOW + timedelta(days=2)
    assert refresh_time_based_segments(session, start) == 1  # entered lapsed
    contact.last_order_at = start  # bought again; nothing told the segments yet
    session.flush()
    assert refresh_time_based_segments(session, start + timedelta(minutes=5)) == 0  # still fresh
    assert in_segment(session, "lapsed", contact.id)
    assert refresh_time_based_segments(session, start + timedelta(minutes=16)) == 1  # default 15
    assert not in_segment(session, "lapsed", contact.id)
