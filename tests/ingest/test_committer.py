"""Group commit: concurrent requests share one INSERT and one commit; failures stay local."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import Future

import pytest
from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from automation.core.config import Settings
from automation.core.db import get_engine, session_factory
from automation.core.models_inbox import InboxDelivery
from automation.inbox.committer import GroupCommitter
from automation.inbox.mapping import Delivery
from automation.inbox.record import Recorded
from tests.ingest.helpers import wait_for_send


def delivery(key: str) -> list[Delivery]:
    return [Delivery("shopify", "orders/create", key, b"{}")]


def test_queued_requests_are_committed_together_and_answered_in_order(
    settings: Settings, session: Session
) -> None:
    sent: list[list[int]] = []
    committer = GroupCommitter(session_factory(settings), sent.append)
    commits: list[int] = []
    event.listen(get_engine(settings), "commit", lambda conn: commits.append(1))
    futures: list[Future[Recorded]] = []
    for n in range(100):  # queued before the thread runs: one batch
        future: Future[Recorded] = Future()
        committer.work.put((delivery(f"k{n % 90}"), future))  # 10 keys twice
        futures.append(future)
    committer.start()
    results = [f.result(timeout=10) for f in futures]
    assert len(commits) == 1
    assert [len(r.new_ids) for r in results] == [1] * 90 + [0] * 10
    assert [r.ids[0] for r in results[90:]] == [r.ids[0] for r in results[:10]]
    assert session.scalar(select(InboxDelivery.id).where(InboxDelivery.dedupe_key == "k89"))
    wait_for_send(sent)  # the enqueuer thread sends the new ids
    assert sorted(sum(sent, [])) == sorted(r.new_ids[0] for r in results[:90])


def test_ids_committed_close_together_are_enqueued_in_one_send(
    settings: Settings, session: Session
) -> None:
    """Under load each commit holds a few requests; one broker send per commit cost more
    GIL time than the commit itself, so the enqueuer gathers commits into one send."""
    sent: list[list[int]] = []
    committer = GroupCommitter(session_factory(settings), sent.append, gather_seconds=1.0)
    ids = [committer.submit(delivery(f"g{n}")).result(timeout=10).new_ids[0] for n in range(3)]
    wait_for_send(sent)  # the enqueuer thread sends the new ids
    time.sleep(0.2)  # a second send, if any, would come now
    assert sent == [ids]


def test_a_cancelled_request_is_skipped_and_the_loop_keeps_going(
    settings: Settings, session: Session
) -> None:
    committer = GroupCommitter(session_factory(settings), lambda ids: None)
    gone: Future[Recorded] = Future()
    gone.cancel()  # the client went away before the commit
    committer.work.put((delivery("gone"), gone))
    answer = committer.submit(delivery("kept")).result(timeout=10)
    assert answer.new_ids and committer.submit(delivery("kept")).result(timeout=10).duplicate
    keys = set(session.scalars(select(InboxDelivery.dedupe_key)))
    assert keys == {"kept"}


@pytest.mark.parametrize("backend", ["postgres"])  # a server restart: PostgreSQL only
def test_a_held_connection_that_died_is_replaced_and_the_batch_still_lands(
    settings: Settings, session: Session
) -> None:
    """The committer keeps its connection between batches; a database restart (here: its
    backend terminated) must not fail the next request."""
    committer = GroupCommitter(session_factory(settings), lambda ids: None)
    assert committer.submit(delivery("before")).result(timeout=10).new_ids
    killed = session.scalars(text(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    ))
    assert any(killed)
    session.commit()
    answer = committer.submit(delivery("after")).result(timeout=10)
    assert answer.new_ids
    keys = set(session.scalars(select(InboxDelivery.dedupe_key)))
    assert keys == {"before", "after"}


@pytest.mark.parametrize("backend", ["postgres"])  # TOAST compression: PostgreSQL only
def test_bodies_are_stored_with_lz4_compression(settings: Settings, session: Session) -> None:
    """pglz compression was the largest part of the server's CPU per stored order."""
    body = b'{"line_items": [' + b",".join(
        b'{"id": %d, "title": "Ao thun", "price": "150000.00"}' % n for n in range(200)
    ) + b"]}"
    committer = GroupCommitter(session_factory(settings), lambda ids: None)
    stored = committer.submit([Delivery("shopify", "orders/create", "lz4", body)]).result(10)
    method = session.scalar(
        text("SELECT pg_column_compression(body) FROM inbox WHERE id = :id"),
        {"id": stored.ids[0]},
    )
    assert method == "lz4"


def test_event_loop_callers_are_answered_through_their_loop(
    settings: Settings, session: Session
) -> None:
    committer = GroupCommitter(session_factory(settings), lambda ids: None)

    async def two_requests() -> list[Recorded]:
        return list(await asyncio.gather(
            committer.store(delivery("a")), committer.store(delivery("a"))
        ))

    first, second = asyncio.run(two_requests())
    assert first.new_ids and second.duplicate and second.ids == first.ids
