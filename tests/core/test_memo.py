"""Per-definition memos stay bounded: a worker that sees segments edited for months does
not keep every parsed rule and compiled statement it has made."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from automation.core.memo import DefinitionMemo
from automation.segments import (
    apply_segments,
    load_segment_text,
    membership,
    refresh_segment,
    store,
)
from tests.segments.data import NOW, make_contact


def test_memo_keeps_the_most_recently_used_values_up_to_its_size() -> None:
    memo: DefinitionMemo[str] = DefinitionMemo(size=2)
    made: list[str] = []

    def make(value: str) -> str:
        made.append(value)
        return value

    assert memo.get("a", lambda: make("A")) == "A"
    assert memo.get("b", lambda: make("B")) == "B"
    assert memo.get("a", lambda: make("A2")) == "A"  # kept: not made again
    memo.put("c", "C")  # "b" is now the least recently used: it goes
    assert len(memo) == 2
    assert memo.get("b", lambda: make("B2")) == "B2"
    assert made == ["A", "B", "B2"]


def test_segment_edits_keep_rule_and_statement_memos_bounded(
    session: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store, "_RULE_CACHE", DefinitionMemo(size=3))
    monkeypatch.setattr(membership, "_PREPARED", DefinitionMemo(size=3))
    make_contact(session, email="buyer@shop.vn", orders_count=5)
    at = NOW
    for threshold in range(1, 9):  # eight edits of one segment
        text = f"segment: buyers\nname: Buyers\nrule: {{field: orders_count, gte: {threshold}}}\n"
        [(_, segment)] = apply_segments(session, [load_segment_text(text, "buyers.yaml")])
        at += timedelta(hours=1)
        entered, exited = refresh_segment(session, segment, at)
        # the edit in force decides: the buyer (5 orders) is in up to gte 5, out after
        assert (entered, exited) == ((1, 0) if threshold == 1 else (0, 1) if threshold == 6
                                     else (0, 0))
        assert len(store._RULE_CACHE) <= 3 and len(membership._PREPARED) <= 3
