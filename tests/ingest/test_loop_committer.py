"""PostgreSQL group commit on the event loop: one transaction per batch, failures stay
local, a dead connection is replaced, an unreachable database reaches the waiter as the
error the app answers 503. Real PostgreSQL throughout."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from automation.core.config import Settings
from automation.core.db import make_engine, session_factory
from automation.core.models_inbox import InboxDelivery
from automation.inbox.committer import GroupCommitter
from automation.inbox.loop_committer import MAX_BATCH
from automation.inbox.mapping import Delivery
from automation.inbox.record import Recorded
from tests.ingest.helpers import wait_for_send

pytestmark = pytest.mark.parametrize("backend", ["postgres"])
T = TypeVar("T")


def delivery(key: str) -> list[Delivery]:
    return [Delivery("shopify", "orders/create", key, b"{}")]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coroutine)


def transactions(session: Session) -> dict[str, str]:
    """dedupe_key -> the id of the transaction that inserted the row (xmin)."""
    session.commit()
    rows = session.execute(text("SELECT dedupe_key, xmin::text FROM inbox"))
    return {key: xid for key, xid in rows}


def test_concurrent_stores_are_one_transaction_answered_in_order(
    settings: Settings, session: Session
) -> None:
    sent: list[list[int]] = []
    committer = GroupCommitter(session_factory(settings), sent.append, gather_seconds=0.0)

    async def requests() -> list[Recorded]:
        return list(await asyncio.gather(
            *(committer.store(delivery(f"k{n % 90}")) for n in range(100))  # 10 keys twice
        ))

    results = run(requests())
    assert not committer.started  # no committer thread on PostgreSQL
    assert [len(r.new_ids) for r in results] == [1] * 90 + [0] * 10
    assert [r.ids[0] for r in results[90:]] == [r.ids[0] for r in results[:10]]
    assert len(set(transactions(session).values())) == 1  # one batch, one commit
    wait_for_send(sent)  # the enqueuer thread sends the new ids
    assert sorted(sum(sent, [])) == sorted(r.new_ids[0] for r in results[:90])


def test_more_than_a_batch_is_committed_in_batches_of_max_batch(
    settings: Settings, session: Session
) -> None:
    committer = GroupCommitter(session_factory(settings), lambda ids: None)

    async def requests() -> list[Recorded]:
        stores = (committer.store(delivery(f"m{n}")) for n in range(MAX_BATCH + 10))
        return list(await asyncio.gather(*stores))

    assert all(r.new_ids for r in run(requests()))
    sizes = sorted(list(transactions(session).values()).count(x)
                   for x in set(transactions(session).values()))
    assert sizes == [10, MAX_BATCH]


def test_redeliveries_answer_duplicate_with_the_stored_ids(
    settings: Settings, session: Session
) -> None:
    committer = GroupCommitter(session_factory(settings), lambda ids: None)

    async def requests() -> tuple[Recorded, Recorded, Recorded]:
        first, racing = await asyncio.gather(
            committer.store(delivery("a")), committer.store(delivery("a"))
        )
        later = await committer.store(delivery("a") + delivery("b"))
        return first, racing, later

    first, racing, later = run(requests())
    assert first.new_ids and racing.duplicate and racing.ids == first.ids
    assert later.ids[0] == first.ids[0] and later.new_ids == later.ids[1:]
    assert not later.duplicate


def test_a_request_cancelled_before_its_batch_stores_nothing(
    settings: Settings, session: Session
) -> None:
    committer = GroupCommitter(session_factory(settings), lambda ids: None)

    async def requests() -> Recorded:
        gone = asyncio.create_task(committer.store(delivery("gone")))
        await asyncio.sleep(0)  # queued; the batch is not taken yet
        gone.cancel()  # the client went away
        kept = await committer.store(delivery("kept"))
        with pytest.raises(asyncio.CancelledError):
            await gone
        return kept

    assert run(requests()).new_ids
    assert set(session.scalars(select(InboxDelivery.dedupe_key))) == {"kept"}


def test_a_failing_request_does_not_fail_the_others_in_its_batch(
    settings: Settings, session: Session
) -> None:
    committer = GroupCommitter(session_factory(settings), lambda ids: None)

    async def requests() -> list[Recorded | BaseException]:
        stores = [committer.store(delivery(key)) for key in ("good1", "bad\x00", "good2")]
        answers = asyncio.gather(*stores, return_exceptions=True)
        return list(await asyncio.wait_for(answers, 10))  # every waiter is answered

    good1, bad, good2 = run(requests())  # PostgreSQL text cannot hold NUL: the batch fails
    assert isinstance(bad, RuntimeError)
    assert isinstance(good1, Recorded) and good1.new_ids
    assert isinstance(good2, Recorded) and good2.new_ids
    assert set(session.scalars(select(InboxDelivery.dedupe_key))) == {"good1", "good2"}


def test_a_killed_connection_is_replaced_and_the_batch_still_lands(
    settings: Settings, session: Session
) -> None:
    """The loop's committer keeps its connection between batches; a database restart
    (here: its backend terminated from another connection) must not fail the next one."""
    committer = GroupCommitter(session_factory(settings), lambda ids: None)

    async def requests() -> tuple[Recorded, Recorded]:
        before = await committer.store(delivery("before"))
        killed = session.scalars(text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ))
        assert any(killed)
        session.commit()
        return before, await committer.store(delivery("after"))

    before, after = run(requests())
    assert before.new_ids and after.new_ids
    assert set(session.scalars(select(InboxDelivery.dedupe_key))) == {"before", "after"}


def test_an_unreachable_database_reaches_the_waiter_as_operational_error(
    settings: Settings,
) -> None:
    """What automation.ingest.unavailable answers 503, as the thread committer raises it."""
    engine = make_engine("postgresql+psycopg://postgres@127.0.0.1:9/down")
    committer = GroupCommitter(sessionmaker(engine), lambda ids: None)

    async def request() -> Recorded:
        return await committer.store(delivery("lost"))

    with pytest.raises(OperationalError):
        run(request())
    engine.dispose()


def test_the_libpq_url_comes_from_the_configured_sqlalchemy_url(settings: Settings) -> None:
    engine = make_engine("postgresql+psycopg://shop:s3cret@db.internal:6543/ma?sslmode=require")
    committer = GroupCommitter(sessionmaker(engine), lambda ids: None)
    assert committer.conninfo == "postgresql://shop:s3cret@db.internal:6543/ma?sslmode=require"
    engine.dispose()
