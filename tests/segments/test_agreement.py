"""Property: the SQL compiler and the incremental evaluator agree, on SQLite and PostgreSQL.

Random contacts (fields, attributes, tags, rollups), events with properties, messages with
engagement events, suppressions, consents and memberships; random rules of bounded depth
built through the YAML-level syntax (so the parser is exercised too). Times sit on the
rule boundaries (exactly 30 / 90 / 180 days ago ...) to catch >= vs > disagreements.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from automation.core.models import (
    Consent,
    Contact,
    Event,
    Message,
    MessageEvent,
    Segment,
    SegmentMembership,
    Suppression,
)
from automation.segments import compile_rule, load_rule, matches
from tests.segments.data import NOW

DAYS = [0, 3, 7, 30, 30, 60, 90, 90, 180, 31, 400]
DURATIONS = ["3d", "7d", "30d", "90d", "30d", "90d", "180d"]
TEXTS = ["Hà Nội", "HCM", "5", "", "Nội"]
NUMBERS = [0, 1, 2, 2.5, 2_000_000]
EVENT_TYPES = ["order.created", "lead.captured", "cart.abandoned"]
CHANNELS = ["email", "sms", "zalo_zns", "zalo_oa", "messenger"]
ME_TYPES = ["opened", "clicked", "replied", "delivered", "message.opened", "message.clicked"]

times = st.builds(
    lambda d, h: NOW - timedelta(days=d, hours=h),
    st.sampled_from(DAYS),
    st.sampled_from([0, 0, 0, 5]),
)
json_scalars = st.one_of(st.sampled_from(TEXTS), st.sampled_from(NUMBERS), st.booleans(), st.none())
json_non_null = st.one_of(st.sampled_from(TEXTS), st.sampled_from(NUMBERS), st.booleans())
json_values = st.one_of(
    json_scalars, st.lists(st.one_of(st.sampled_from(TEXTS), st.sampled_from(NUMBERS)), max_size=3)
)
attributes = st.dictionaries(
    st.sampled_from(["city", "score", "interests"]), json_values, max_size=3
)


@st.composite
def contact_rows(draw: Any, index: int) -> dict[str, Any]:
    """One contact's columns; addresses are unique per index."""
    orders = draw(st.sampled_from([0, 1, 2, 3, 5, 10]))
    return {
        "email": draw(st.sampled_from([None, "" if index == 0 else None, f"c{index}@shop.vn"])),
        "phone": draw(st.sampled_from([None, f"+8491234567{index}"])),
        "zalo_user_id": draw(st.sampled_from([None, f"z{index}"])),
        "facebook_psid": draw(st.sampled_from([None, f"p{index}"])),
        "first_name": draw(st.sampled_from([None, "An", "Bình", "Hà Nội"])),
        "locale": draw(st.sampled_from([None, "vi", "en"])),
        "attributes": draw(attributes),
        "tags": draw(st.lists(st.sampled_from(["vip", "sỉ", "5"]), max_size=2)),
        "orders_count": orders,
        "total_spent": draw(st.sampled_from([0, 999_999, 1_000_000, 5_000_000, 20_000_000])),
        "last_order_at": draw(st.one_of(st.none(), times)),
        "first_order_at": draw(st.one_of(st.none(), times)),
        "created_at": draw(times),
        "last_inbound_at": {},
    }


@st.composite
def world(draw: Any) -> dict[str, Any]:
    """Contacts and every fact table a rule can read."""
    n = draw(st.integers(1, 8))
    contacts = [draw(contact_rows(i)) for i in range(n)]
    idx = st.integers(0, n - 1)
    events = draw(
        st.lists(
            st.tuples(
                idx,
                st.sampled_from(EVENT_TYPES),
                times,
                st.dictionaries(st.sampled_from(["total", "status"]), json_scalars, max_size=2),
            ),
            max_size=8,
        )
    )
    engagements = draw(
        st.lists(
            st.tuples(idx, st.sampled_from(CHANNELS), st.sampled_from(ME_TYPES), times), max_size=6
        )
    )
    suppressions = draw(
        st.lists(
            st.tuples(
                idx,
                st.sampled_from(["email", "sms", "zalo", "zalo_zns", "messenger"]),
                st.sampled_from(["email", "phone", "bare_phone", "zalo_user_id", "facebook_psid"]),
            ),
            max_size=3,
        )
    )
    consents = draw(
        st.lists(
            st.tuples(
                idx,
                st.sampled_from(["email", "sms", "zalo", "messenger"]),
                st.sampled_from(["marketing", "transactional"]),
                st.sampled_from(["granted", "denied"]),
            ),
            max_size=4,
            unique_by=lambda t: (t[0], t[1], t[2]),
        )
    )
    memberships = draw(
        st.lists(st.tuples(idx, st.sampled_from(["seg_a", "seg_b"]), st.booleans()), max_size=4)
    )
    return {
        "contacts": contacts,
        "events": events,
        "engagements": engagements,
        "suppressions": suppressions,
        "consents": consents,
        "memberships": memberships,
    }


def _op_value(kind: str) -> st.SearchStrategy[dict[str, Any]]:
    if kind == "text":
        return st.one_of(
            st.builds(
                lambda op, v: {op: v},
                st.sampled_from(["eq", "ne", "contains"]),
                st.sampled_from(TEXTS),
            ),
            st.builds(
                lambda v: {"in": v}, st.lists(st.sampled_from(TEXTS), min_size=1, max_size=2)
            ),
            st.builds(lambda v: {"exists": v}, st.booleans()),
        )
    if kind == "number":
        return st.one_of(
            st.builds(
                lambda op, v: {op: v},
                st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]),
                st.sampled_from([0, 1, 2, 3, 4, 5, 1_000_000, 2.5]),
            ),
            st.builds(
                lambda v: {"in": v}, st.lists(st.sampled_from([0, 1, 2, 5]), min_size=1, max_size=2)
            ),
        )
    if kind == "date":
        return st.one_of(
            st.builds(
                lambda op, d: {op: d},
                st.sampled_from(["within", "more_than_ago"]),
                st.sampled_from(DURATIONS),
            ),
            st.builds(
                lambda op, d: {op: (NOW - timedelta(days=d)).isoformat()},
                st.sampled_from(["before", "after"]),
                st.sampled_from(DAYS),
            ),
            st.builds(lambda v: {"exists": v}, st.booleans()),
        )
    # json
    return st.one_of(
        st.builds(lambda op, v: {op: v}, st.sampled_from(["eq", "ne"]), json_non_null),
        st.builds(
            lambda op, v: {op: v},
            st.sampled_from(["gt", "gte", "lt", "lte"]),
            st.sampled_from(NUMBERS),
        ),
        st.builds(
            lambda v: {"contains": v}, st.one_of(st.sampled_from(TEXTS), st.sampled_from(NUMBERS))
        ),
        st.builds(
            lambda v: {"in": v},
            st.lists(json_non_null, min_size=1, max_size=3),
        ),
        st.builds(lambda v: {"exists": v}, st.booleans()),
    )


def _field(name: str, kind: str) -> st.SearchStrategy[dict[str, Any]]:
    return _op_value(kind).map(lambda ov: {"field": name, **ov})


within_opt = st.one_of(st.none(), st.sampled_from(DURATIONS))


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


leaves = st.one_of(
    st.sampled_from(["email", "first_name", "phone", "locale"]).flatmap(
        lambda f: _field(f, "text")
    ),
    st.sampled_from(
        ["orders_count", "total_spent", "rfm_recency", "rfm_frequency", "rfm_monetary", "frequency"]
    ).flatmap(lambda f: _field(f, "number")),
    st.sampled_from(
        [
            "last_order_at",
            "first_order_at",
            "created_at",
            "recency",
            "last_engaged_at",
            "last_engaged_at.email",
            "last_engaged_at.zalo",
        ]
    ).flatmap(lambda f: _field(f, "date")),  # fmt: skip
    st.sampled_from(["city", "score", "interests"]).flatmap(
        lambda a: _field(f"attributes.{a}", "json")
    ),
    st.builds(lambda v: {"field": "tags", "contains": v}, st.sampled_from(["vip", "sỉ", "5", "x"])),
    st.builds(
        lambda t, where, n, w: _clean(
            {"performed": t, "where": where or None, "at_least": n, "within": w}
        ),
        st.sampled_from(EVENT_TYPES),
        st.lists(
            st.builds(
                lambda p, ov: {"property": p, **ov},
                st.sampled_from(["total", "status"]),
                _op_value("json"),
            ),
            max_size=2,
        ),
        st.sampled_from([1, 1, 2, 3]),
        within_opt,
    ),
    st.builds(
        lambda t, w: _clean({"not_performed": t, "within": w}),
        st.sampled_from(EVENT_TYPES),
        within_opt,
    ),
    st.builds(
        lambda kind, ch, n, w: _clean({kind: ch, "at_least": n, "within": w}),
        st.sampled_from(["opened", "clicked", "replied", "engaged"]),
        st.sampled_from(["any", "email", "sms", "zalo", "zalo_oa", "messenger"]),
        st.sampled_from([1, 1, 2]),
        within_opt,
    ),
    st.builds(
        lambda kind, ch: {kind: ch},
        st.sampled_from(["reachable", "has_address", "suppressed"]),
        st.sampled_from(["any", "email", "sms", "zalo", "messenger"]),
    ),
    st.builds(lambda k: {"in_segment": k}, st.sampled_from(["seg_a", "seg_b"])),
)
rules = st.recursive(
    leaves,
    lambda inner: st.one_of(
        st.builds(lambda xs: {"all": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda xs: {"any": xs}, st.lists(inner, max_size=3)),
        st.builds(lambda x: {"not": x}, inner),
    ),
    max_leaves=6,
)


def _insert(session: Session, w: dict[str, Any]) -> list[int]:
    contacts = [Contact(**row) for row in w["contacts"]]
    session.add_all(contacts)
    session.flush()
    ids = [c.id for c in contacts]
    for n, (i, type_, at, props) in enumerate(w["events"]):
        session.add(
            Event(
                source="t",
                source_event_id=f"e{n}",
                type=type_,
                contact_id=ids[i],
                occurred_at=at,
                payload={"properties": props},
            )
        )
    for n, (i, channel, type_, at) in enumerate(w["engagements"]):
        message = Message(
            step_key=f"s{n}", contact_id=ids[i], channel=channel, template="t",
            fallback=[], rendered={}, links={}, created_at=at,
        )  # fmt: skip
        session.add(message)
        session.flush()
        session.add(MessageEvent(message_id=message.id, type=type_, provider="t", occurred_at=at))
    seen = set()
    for i, channel, which in w["suppressions"]:
        contact = contacts[i]
        address = (
            (contact.phone or "").lstrip("+") if which == "bare_phone" else getattr(contact, which)
        )
        if address is None or (channel, address) in seen:
            continue
        seen.add((channel, address))
        session.add(Suppression(channel=channel, address=address, reason="hard_bounce"))
    for i, channel, purpose, status in w["consents"]:
        session.add(
            Consent(contact_id=ids[i], channel=channel, purpose=purpose, status=status, source="t")
        )
    segments = {}
    for key in ("seg_a", "seg_b"):
        segments[key] = Segment(key=key, name=key, rules={}, definition_hash="x")
        session.add(segments[key])
    session.flush()
    opened = set()
    for i, key, is_open in w["memberships"]:
        if is_open and (i, key) in opened:
            continue
        if is_open:
            opened.add((i, key))
        session.add(
            SegmentMembership(
                segment_id=segments[key].id,
                contact_id=ids[i],
                entered_at=NOW - timedelta(days=5),
                exited_at=None if is_open else NOW - timedelta(days=1),
            )
        )
    session.flush()
    return ids


@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(w=world(), raw_rules=st.lists(rules, min_size=4, max_size=10))
def test_sql_and_incremental_agree(
    session: Session, w: dict[str, Any], raw_rules: list[Any]
) -> None:
    try:
        ids = _insert(session, w)
        for raw in raw_rules:
            rule = load_rule(raw, where="generated")
            by_sql = set(session.scalars(compile_rule(rule, NOW)))
            by_python = {cid for cid in ids if matches(session, rule, cid, NOW)}
            assert by_sql == by_python, f"rule {raw!r}: sql={by_sql} python={by_python}"
            event("none" if not by_sql else "all" if by_sql == set(ids) else "some")
    finally:
        session.rollback()
