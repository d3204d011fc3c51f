"""Each operator on a fixed, boundary-rich data set: expected members, and both evaluators.

`check` asserts the SQL compiler and the incremental evaluator give the same members AND
that they equal the expected contacts, so a shared misunderstanding fails too.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.orm import Session

from automation.core.models import Consent, Segment, SegmentMembership, Suppression
from automation.segments import compile_rule, load_rule, matches
from tests.segments.data import NOW, add_engagement, add_event, ago, make_contact


@pytest.fixture
def people(session: Session) -> dict[str, int]:
    """Five contacts with distinct fields, events and engagement."""
    an = make_contact(
        session,
        email="an@shop.vn",
        phone="+84912345678",
        first_name="An",
        attributes={"city": "Hà Nội", "score": 7, "vip": True, "interests": ["yoga", 3]},
        tags=["vip"],
        orders_count=10,
        total_spent=20_000_000,
        last_order_at=ago(days=30),  # exactly on the 30-day boundary
        created_at=ago(days=400),
    )
    binh = make_contact(
        session,
        email="binh@shop.vn",
        first_name="Bình",
        attributes={"city": "HCM", "score": "7", "vip": False},
        tags=[],
        orders_count=2,
        total_spent=1_000_000,
        last_order_at=ago(days=91),
        created_at=ago(days=3),
    )
    chi = make_contact(
        session,
        phone="+84987654321",
        zalo_user_id="z-chi",
        attributes={"city": None, "score": 2.5},
        orders_count=0,
        total_spent=0,
        created_at=ago(days=1),
    )
    dung = make_contact(
        session, facebook_psid="psid-dung", email="", attributes={"note": "Nội thất"}
    )
    em = make_contact(session, email="em@shop.vn", attributes={"interests": "yoga"})
    # events: an has two big orders in 180 days, binh one big + one small, chi only a lead
    add_event(session, an, "order.created", ago(days=10), total=2_500_000, status="paid")
    add_event(session, an, "order.created", ago(days=180), total=2_000_000, status="paid")
    add_event(session, binh, "order.created", ago(days=20), total=3_000_000, status="open")
    add_event(session, binh, "order.created", ago(days=21), total=500_000, status="open")
    add_event(session, chi, "lead.captured", ago(days=4), form="popup")
    add_event(session, em, "lead.captured", ago(days=1), form="popup")
    # engagement
    add_engagement(session, an, "email", "opened", ago(days=2))
    add_engagement(session, an, "email", "clicked", ago(days=40))
    add_engagement(session, binh, "zalo_zns", "message.clicked", ago(days=5))
    add_engagement(session, chi, "sms", "delivered", ago(days=1))
    add_engagement(session, dung, "messenger", "replied", ago(days=60))
    # reachability
    session.add(Suppression(channel="email", address="binh@shop.vn", reason="hard_bounce"))
    session.add(Suppression(channel="zalo", address="84987654321", reason="unsubscribed"))
    session.add(
        Consent(contact_id=an.id, channel="sms", purpose="marketing", status="denied", source="t")
    )
    # memberships
    seg = Segment(key="vip", name="VIP", rules={}, definition_hash="x")
    session.add(seg)
    session.flush()
    session.add(SegmentMembership(segment_id=seg.id, contact_id=an.id, entered_at=ago(days=5)))
    session.add(
        SegmentMembership(
            segment_id=seg.id, contact_id=binh.id, entered_at=ago(days=9), exited_at=ago(days=1)
        )
    )
    session.flush()
    return {"an": an.id, "binh": binh.id, "chi": chi.id, "dung": dung.id, "em": em.id}


CASES: list[tuple[Any, set[str]]] = [
    # text fields
    ({"field": "first_name", "eq": "An"}, {"an"}),
    ({"field": "first_name", "ne": "An"}, {"binh", "chi", "dung", "em"}),
    ({"field": "first_name", "in": ["An", "Bình"]}, {"an", "binh"}),
    ({"field": "email", "contains": "@shop.vn"}, {"an", "binh", "em"}),
    ({"field": "email", "exists": True}, {"an", "binh", "dung", "em"}),
    ({"field": "phone", "exists": False}, {"binh", "dung", "em"}),
    # numbers, aliases, RFM (fixed thresholds)
    ({"field": "orders_count", "gte": 2}, {"an", "binh"}),
    ({"field": "frequency", "gt": 2}, {"an"}),
    ({"field": "total_spent", "lt": 1_000_000}, {"chi", "dung", "em"}),
    ({"field": "monetary", "lte": 1_000_000}, {"binh", "chi", "dung", "em"}),
    ({"field": "orders_count", "in": [0, 10]}, {"an", "chi", "dung", "em"}),
    ({"field": "rfm_recency", "eq": 5}, {"an"}),  # 30 days ago is still score 5
    ({"field": "rfm_recency", "eq": 2}, {"binh"}),  # 91 days ago
    ({"field": "rfm_frequency", "gte": 5}, {"an"}),
    ({"field": "rfm_monetary", "eq": 2}, {"binh"}),
    ({"field": "rfm_monetary", "eq": 5}, {"an"}),
    # dates relative to now and absolute
    ({"field": "last_order_at", "within": "30d"}, {"an"}),
    ({"field": "last_order_at", "more_than_ago": "90d"}, {"binh"}),
    ({"field": "recency", "more_than_ago": "30d"}, {"binh"}),
    ({"field": "created_at", "within": "3d"}, {"binh", "chi"}),
    ({"field": "created_at", "after": "2026-05-29"}, {"binh", "chi"}),
    ({"field": "created_at", "before": ago(days=2).isoformat()}, {"an", "binh", "dung", "em"}),
    ({"field": "last_order_at", "exists": False}, {"chi", "dung", "em"}),
    # attributes (typed by the literal)
    ({"field": "attributes.city", "in": ["Hà Nội", "HCM"]}, {"an", "binh"}),
    ({"field": "attributes.city", "ne": "HCM"}, {"an", "chi", "dung", "em"}),
    ({"field": "attributes.city", "exists": True}, {"an", "binh"}),
    ({"field": "attributes.score", "eq": 7}, {"an"}),  # the text "7" is not the number 7
    ({"field": "attributes.score", "eq": "7"}, {"binh"}),
    ({"field": "attributes.score", "gt": 2}, {"an", "chi"}),
    ({"field": "attributes.score", "lte": 2.5}, {"chi"}),
    ({"field": "attributes.vip", "eq": True}, {"an"}),
    ({"field": "attributes.vip", "eq": False}, {"binh"}),
    ({"field": "attributes.interests", "contains": "yoga"}, {"an", "em"}),  # list or text
    ({"field": "attributes.interests", "contains": 3}, {"an"}),
    ({"field": "attributes.note", "contains": "Nội"}, {"dung"}),
    ({"field": "tags", "contains": "vip"}, {"an"}),
    # events
    ({"performed": "order.created"}, {"an", "binh"}),
    (
        {
            "performed": "order.created",
            "where": [{"property": "total", "gte": 2_000_000}],
            "at_least": 2,
            "within": "180d",
        },
        {"an"},
    ),
    ({"performed": "order.created", "at_least": 2, "within": "30d"}, {"binh"}),
    ({"performed": "order.created", "where": [{"property": "status", "eq": "open"}]}, {"binh"}),
    ({"not_performed": "order.created", "within": "15d"}, {"binh", "chi", "dung", "em"}),
    ({"not_performed": "lead.captured", "within": "3d"}, {"an", "binh", "chi", "dung"}),
    # engagement
    ({"opened": "email", "within": "7d"}, {"an"}),
    ({"clicked": "any", "within": "30d"}, {"binh"}),
    ({"clicked": "zalo"}, {"binh"}),
    ({"replied": "any"}, {"dung"}),
    ({"engaged": "any", "at_least": 2}, {"an"}),
    ({"field": "last_engaged_at", "within": "30d"}, {"an", "binh"}),
    ({"field": "last_engaged_at", "more_than_ago": "30d"}, {"dung"}),
    ({"field": "last_engaged_at.email", "exists": True}, {"an"}),
    # reachability
    ({"has_address": "email"}, {"an", "binh", "em"}),
    ({"suppressed": "email"}, {"binh"}),
    ({"suppressed": "zalo"}, {"chi"}),  # ZNS-style number without '+'
    ({"reachable": "email"}, {"an", "em"}),
    ({"reachable": "sms"}, {"chi"}),  # an denied SMS marketing
    ({"reachable": "zalo"}, {"an"}),
    ({"reachable": "messenger"}, {"dung"}),
    ({"reachable": "any"}, {"an", "chi", "dung", "em"}),
    # membership and logic
    ({"in_segment": "vip"}, {"an"}),
    ({"not": {"in_segment": "vip"}}, {"binh", "chi", "dung", "em"}),
    ({"all": [{"in_segment": "vip"}, {"field": "orders_count", "gte": 1}]}, {"an"}),
    ({"any": [{"field": "first_name", "eq": "An"}, {"has_address": "messenger"}]}, {"an", "dung"}),
    ({"all": []}, {"an", "binh", "chi", "dung", "em"}),
    ({"any": []}, set()),
    ([{"field": "orders_count", "gte": 1}, {"not": {"field": "first_name", "eq": "An"}}], {"binh"}),
]


def test_every_operator(session: Session, people: dict[str, int]) -> None:
    problems = []
    for raw, expected in CASES:
        rule = load_rule(raw, where="test")
        by_sql = set(session.scalars(compile_rule(rule, NOW)))
        by_python = {cid for cid in people.values() if matches(session, rule, cid, NOW)}
        want = {people[name] for name in expected}
        if by_sql != want or by_python != want:
            names = {v: k for k, v in people.items()}
            problems.append(
                f"{raw!r}: want {sorted(expected)}, SQL {sorted(names[c] for c in by_sql)}, "
                f"incremental {sorted(names[c] for c in by_python)}"
            )
    assert not problems, "\n".join(problems)
