"""The after-commit outbox hook: the domain names new rows, the runtime's sinks take them.

    outbox.after_commit(session, "messages", ids)   # domain code, inside a transaction
    outbox.register_sink("messages", sink)          # the runtime, once at startup

Ids noted in a transaction are handed to the kind's sink right after that transaction
really commits: the outermost commit, never the release of a SAVEPOINT (SQLAlchemy fires
``after_commit`` for both). Ids noted inside a savepoint that rolls back are dropped, and
so is everything on a rollback of the whole transaction. A sink gets the session's bind
(the rows are committed and visible to a fresh session there) and the ids; a failing or
missing sink only logs: the scheduler finds the rows again from database state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

log = logging.getLogger(__name__)

Sink = Callable[[Any, list[int]], None]
_SINKS: dict[str, Sink] = {}
_PENDING = "outbox.pending"
_HOOKED = "outbox.hooked"


def register_sink(kind: str, sink: Sink) -> None:
    """Make ``sink(bind, ids)`` receive the ids of ``kind`` committed from now on."""
    _SINKS[kind] = sink


def after_commit(session: Session, kind: str, ids: list[int]) -> None:
    """Hand ``ids`` of ``kind`` to its sink once the session's outermost transaction commits."""
    if not ids:
        return
    owner = session.get_nested_transaction() or session.get_transaction()
    if owner is None:  # nothing to wait for: no transaction is open
        hand_off(kind, list(ids), session.get_bind())
        return
    if not session.info.get(_HOOKED):
        event.listen(session, "after_commit", _on_commit)
        event.listen(session, "after_transaction_end", _on_end)
        session.info[_HOOKED] = True
    _pending(session).append((owner, kind, list(ids)))


def pending(session: Session, kind: str) -> list[int]:
    """Ids of ``kind`` noted in this session and not handed off yet."""
    return [i for _, k, ids in _pending(session) if k == kind for i in ids]


def hand_off(kind: str, ids: list[int], bind: Any = None) -> None:
    """Give committed ``ids`` to the kind's sink now; failures are logged, never raised."""
    sink = _SINKS.get(kind)
    if not ids:
        return
    if sink is None:
        log.warning("no outbox sink for %s; %d ids wait for the scheduler", kind, len(ids))
        return
    try:
        sink(bind, ids)
    except Exception:  # noqa: BLE001 - the rows are stored; the scheduler finds them again
        log.exception("outbox sink %s failed; %d ids wait for the scheduler", kind, len(ids))


Entry = tuple[SessionTransaction, str, list[int]]


def _pending(session: Session) -> list[Entry]:
    entries: list[Entry] = session.info.setdefault(_PENDING, [])
    return entries


def _on_commit(session: Session) -> None:
    nested = session.get_nested_transaction()
    entries = _pending(session)
    if nested is not None:  # a savepoint was released: its ids now belong to its parent
        parent = nested.parent
        entries[:] = [(parent if o is nested and parent else o, k, i) for o, k, i in entries]
        return
    session.info[_PENDING] = []
    by_kind: dict[str, list[int]] = {}
    for _, kind, ids in entries:
        by_kind.setdefault(kind, []).extend(ids)
    for kind, ids in by_kind.items():
        hand_off(kind, ids, session.get_bind())


def _on_end(session: Session, transaction: SessionTransaction) -> None:
    entries = _pending(session)
    if entries:  # what is still owned by an ending transaction was rolled back
        entries[:] = [e for e in entries if e[0] is not transaction]
