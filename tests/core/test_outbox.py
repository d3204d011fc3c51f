"""The after-commit outbox hook: ids reach the sink after the outermost commit only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from automation.core import outbox
from automation.core.models import Contact


@pytest.fixture
def received(session: Session) -> Iterator[list[tuple[list[int], int]]]:
    """What the "test" sink received: (ids, contacts visible to a fresh session then)."""
    calls: list[tuple[list[int], int]] = []

    def sink(bind: Any, ids: list[int]) -> None:
        with Session(bind=bind) as fresh:
            calls.append((ids, int(fresh.scalar(select(func.count()).select_from(Contact)) or 0)))

    outbox.register_sink("test", sink)
    yield calls
    outbox._SINKS.pop("test", None)


def _contact(session: Session, n: int) -> int:
    contact = Contact(email=f"outbox{n}@example.vn")
    session.add(contact)
    session.flush()
    return contact.id


def test_savepoint_release_waits_for_the_outer_commit(
    session: Session, received: list[tuple[list[int], int]]
) -> None:
    with session.begin_nested():
        cid = _contact(session, 1)
        outbox.after_commit(session, "test", [cid])
    assert received == []  # the savepoint was released; nothing is committed yet
    assert outbox.pending(session, "test") != []
    session.commit()
    assert received == [([cid], 1)]  # once, and a fresh session sees the committed row
    assert outbox.pending(session, "test") == []


def test_rolled_back_savepoint_drops_only_its_ids(
    session: Session, received: list[tuple[list[int], int]]
) -> None:
    kept = _contact(session, 1)
    outbox.after_commit(session, "test", [kept])
    with pytest.raises(RuntimeError), session.begin_nested():
        outbox.after_commit(session, "test", [_contact(session, 2)])
        raise RuntimeError("item failed")
    session.commit()
    assert [ids for ids, _ in received] == [[kept]]


def test_rollback_drops_everything(session: Session, received: list[tuple[list[int], int]]) -> None:
    outbox.after_commit(session, "test", [_contact(session, 1)])
    session.rollback()
    session.commit()
    assert received == [] and outbox.pending(session, "test") == []


def test_next_transaction_starts_clean(
    session: Session, received: list[tuple[list[int], int]]
) -> None:
    first, second = _contact(session, 1), None
    outbox.after_commit(session, "test", [first])
    session.commit()
    second = _contact(session, 2)
    outbox.after_commit(session, "test", [second])
    session.commit()
    assert [ids for ids, _ in received] == [[first], [second]]
