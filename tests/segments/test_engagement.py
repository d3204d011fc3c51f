"""One engagement meaning (core.vocabulary.ENGAGEMENT): a Zalo/Messenger read is an open.

Both evaluators (SQL and incremental) must agree, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from automation.segments import compile_rule, load_rule, matches
from tests.segments.data import NOW, add_engagement, add_event, ago, make_contact


def _both(session: Session, raw: object, ids: list[int]) -> tuple[set[int], set[int]]:
    rule = load_rule(raw, where="test.yaml:1")
    by_sql = set(session.scalars(compile_rule(rule, NOW))) & set(ids)
    by_python = {cid for cid in ids if matches(session, rule, cid, NOW)}
    return by_sql, by_python


def test_zalo_read_counts_as_opened(session: Session) -> None:
    reader = make_contact(session, zalo_user_id="z-reader")
    old_reader = make_contact(session, zalo_user_id="z-old")
    delivered = make_contact(session, zalo_user_id="z-delivered")
    email_opener = make_contact(session, email="an@shop.vn")
    messenger_reader = make_contact(session, facebook_psid="p-1")
    add_engagement(session, reader, "zalo_zns", "read", ago(days=10))
    add_engagement(session, old_reader, "zalo_zns", "read", ago(days=40))
    add_engagement(session, delivered, "zalo_zns", "delivered", ago(days=2))
    add_engagement(session, email_opener, "email", "opened", ago(days=5))
    add_engagement(session, messenger_reader, "messenger", "message.read", ago(days=1))
    ids = [reader.id, old_reader.id, delivered.id, email_opener.id, messenger_reader.id]

    by_sql, by_python = _both(session, {"opened": "zalo", "within": "30d"}, ids)
    assert by_sql == by_python == {reader.id}
    by_sql, by_python = _both(session, {"opened": "any", "within": "30d"}, ids)
    assert by_sql == by_python == {reader.id, email_opener.id, messenger_reader.id}
    by_sql, by_python = _both(session, {"engaged": "zalo"}, ids)
    assert by_sql == by_python == {reader.id, old_reader.id}
    # a read is not a click
    by_sql, by_python = _both(session, {"clicked": "any"}, ids)
    assert by_sql == by_python == set()
    # last_engaged_at counts reads too
    raw = {"field": "last_engaged_at.zalo", "within": "30d"}
    by_sql, by_python = _both(session, raw, ids)
    assert by_sql == by_python == {reader.id}


def test_not_in_property_filter_in_segments(session: Session) -> None:
    web = make_contact(session, email="web@shop.vn")
    pos = make_contact(session, email="pos@shop.vn")
    bare = make_contact(session, email="bare@shop.vn")
    add_event(session, web, "order.created", ago(days=1), source="web")
    add_event(session, pos, "order.created", ago(days=1), source="pos")
    add_event(session, bare, "order.created", ago(days=1))
    ids = [web.id, pos.id, bare.id]
    raw = {"performed": "order.created", "where": [{"property": "source", "not_in": ["pos"]}]}
    by_sql, by_python = _both(session, raw, ids)
    assert by_sql == by_python == {web.id, bare.id}
    raw = {"field": "attributes.city", "not_in": ["HCM"]}
    assert _both(session, raw, ids) == ({web.id, pos.id, bare.id},) * 2
