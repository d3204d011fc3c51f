"""Memberships: batch refresh, incremental per-contact evaluation, transitions as events.

Every change writes a segment_memberships row (entered_at / exited_at) and a
`segment.entered` / `segment.exited` internal event with the contact id, whose
source_event_id is derived from the membership row, so it is stored once.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from automation.core.config import get_settings
from automation.core.db import dialect_insert
from automation.core.eventlog import record_events
from automation.core.events import SEGMENT_ENTERED, SEGMENT_EXITED
from automation.core.memo import DefinitionMemo
from automation.core.models import Segment, SegmentMembership
from automation.core.processing import batch_memo, lasting_memo
from automation.segments.compile import PreparedRule, prepare_rule
from automation.segments.evaluate import evaluate, load_facts_of, needs_of
from automation.segments.store import all_segments, rule_of, segment_definitions

log = logging.getLogger(__name__)
CHUNK = 1000


def _event_row(
    segment: Segment, contact_id: int, membership_id: int, kind: str, now: datetime
) -> dict[str, Any]:
    type_ = SEGMENT_ENTERED if kind == "entered" else SEGMENT_EXITED
    return {
        "type": type_,
        "contact_id": contact_id,
        "source_event_id": f"{type_}:{segment.id}:{membership_id}",
        "occurred_at": now,
        "properties": {
            "segment": segment.key,
            "segment_id": segment.id,
            "membership_id": membership_id,
        },
    }


def _enter(
    session: Session, segment: Segment, contact_ids: list[int], now: datetime
) -> list[tuple[int, int]]:
    """Open memberships (skipping ones already open); returns (contact_id, membership_id)."""
    stmt = (
        dialect_insert(session)(SegmentMembership)
        .on_conflict_do_nothing(
            index_elements=["segment_id", "contact_id"], index_where=text("exited_at IS NULL")
        )
        .returning(SegmentMembership.contact_id, SegmentMembership.id)
    )
    opened: list[tuple[int, int]] = []
    for start in range(0, len(contact_ids), CHUNK):
        rows = [
            {"segment_id": segment.id, "contact_id": cid, "entered_at": now}
            for cid in contact_ids[start : start + CHUNK]
        ]
        # executemany: one cached statement (insertmanyvalues), not a compiled VALUES list
        opened.extend((int(c), int(m)) for c, m in session.execute(stmt, rows))
    return opened


def _exit(session: Session, membership_ids: list[int], now: datetime) -> list[tuple[int, int]]:
    """Close open memberships; returns (contact_id, membership_id) actually closed."""
    closed: list[tuple[int, int]] = []
    for start in range(0, len(membership_ids), CHUNK):
        stmt = (
            update(SegmentMembership)
            .where(
                SegmentMembership.id.in_(membership_ids[start : start + CHUNK]),
                SegmentMembership.exited_at.is_(None),
            )
            .values(exited_at=now)
            .returning(SegmentMembership.contact_id, SegmentMembership.id)
            .execution_options(synchronize_session=False)
        )
        closed.extend((int(c), int(m)) for c, m in session.execute(stmt))
    return closed


def _write(
    session: Session, segment: Segment, enter: list[int], leave: list[int], now: datetime
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Open and close memberships, record their events; (contact, membership) opened and
    closed."""
    session.flush()
    opened = _enter(session, segment, sorted(enter), now) if enter else []
    closed = _exit(session, sorted(leave), now) if leave else []
    events = [_event_row(segment, c, m, "entered", now) for c, m in opened]
    events += [_event_row(segment, c, m, "exited", now) for c, m in closed]
    record_events(session, events)
    return opened, closed


_PREPARED: DefinitionMemo[PreparedRule] = DefinitionMemo()


def _prepared(segment: Segment) -> PreparedRule:
    """The segment's rule compiled once per definition (key and hash), for every refresh."""
    key = (segment.key, segment.definition_hash)
    return _PREPARED.get(key, lambda: prepare_rule(rule_of(segment)))


def refresh_segment(session: Session, segment: Segment, now: datetime) -> tuple[int, int]:
    """Whole-base refresh with the SQL compiler; writes only changes. Returns (entered, exited)."""
    prepared = _prepared(segment)
    members: set[int] = set(session.scalars(prepared.statement, prepared.params(now)))
    open_rows = {
        contact_id: membership_id
        for contact_id, membership_id in session.execute(
            select(SegmentMembership.contact_id, SegmentMembership.id).where(
                SegmentMembership.segment_id == segment.id, SegmentMembership.exited_at.is_(None)
            )
        )
    }
    enter = [cid for cid in members if cid not in open_rows]
    leave = [mid for cid, mid in open_rows.items() if cid not in members]
    opened, closed = _write(session, segment, enter, leave, now)
    entered, exited = len(opened), len(closed)
    segment.refreshed_at = now
    session.flush()
    if entered or exited:
        log.info(
            "segment refreshed",
            extra={"segment": segment.key, "entered": entered, "exited": exited},
        )
    return entered, exited


def refresh_all(
    session: Session,
    now: datetime,
    time_based_only: bool = False,
    older_than: timedelta | None = None,
) -> dict[str, tuple[int, int]]:
    """Refresh every segment (or only time-based ones, or only stale ones) in dependency order."""
    result: dict[str, tuple[int, int]] = {}
    for segment, _rule in all_segments(session):
        if time_based_only and not segment.time_based:
            continue
        fresh = segment.refreshed_at is not None and now - segment.refreshed_at < (
            older_than or timedelta(0)
        )
        if older_than is not None and fresh:
            continue
        result[segment.key] = refresh_segment(session, segment, now)
    return result


def refresh_time_based_segments(session: Session, now: datetime) -> int:
    """Periodic task: refresh time-based segments not refreshed in SEGMENT_REFRESH_MINUTES.

    Returns the number of membership changes. Events keep every segment current for the
    contact they touch; this pass only catches up with the passing of time, so a
    whole-base query every scheduler tick (30 s) would be wasted work.
    """
    every = timedelta(minutes=get_settings().segment_refresh_minutes)
    changes = refresh_all(session, now, time_based_only=True, older_than=every)
    return sum(entered + exited for entered, exited in changes.values())


def evaluate_contact(session: Session, contact_id: int, now: datetime) -> list[tuple[str, str]]:
    """Re-evaluate every segment for one contact (dependency order) and write transitions.

    Returns [(segment key, "entered" | "exited")].
    """
    return evaluate_contacts(session, [contact_id], now).get(contact_id, [])


def evaluate_contacts(
    session: Session, contact_ids: list[int], now: datetime
) -> dict[int, list[tuple[str, str]]]:
    """evaluate_contact for several contacts at once: their facts in one query, then each
    segment's transitions for all of them written together (dependency order).

    Returns contact id -> [(segment key, "entered" | "exited")] for the contacts that moved.
    """
    segments = lasting_memo(session, "segments", lambda: segment_definitions(session))
    if not segments:
        return {}
    needs = needs_of(rule for _, rule in segments)
    facts_of = load_facts_of(session, contact_ids, needs, now, memberships=True)
    enter: dict[int, list[int]] = {}  # segment id -> contacts entering
    leave: dict[int, list[int]] = {}  # segment id -> memberships closing
    for contact_id, facts in facts_of.items():  # contacts deleted: memberships cascade
        open_rows = dict(facts.open_memberships)
        for segment, rule in segments:
            member = evaluate(rule, facts, now)
            if member and segment.id not in open_rows:
                enter.setdefault(segment.id, []).append(contact_id)
                facts.segments.add(segment.key)
            elif not member and segment.id in open_rows:
                leave.setdefault(segment.id, []).append(open_rows[segment.id])
                facts.segments.discard(segment.key)
        _known_memberships(session)[contact_id] = set(facts.segments)
    changes: dict[int, list[tuple[str, str]]] = {}
    for segment, _rule in segments:
        if segment.id not in enter and segment.id not in leave:
            continue
        opened, closed = _write(session, segment, enter.get(segment.id, []),
                                leave.get(segment.id, []), now)  # fmt: skip
        for contact_id, _ in opened:
            changes.setdefault(contact_id, []).append((segment.key, "entered"))
        for contact_id, _ in closed:
            changes.setdefault(contact_id, []).append((segment.key, "exited"))
    return changes


def _known_memberships(session: Session) -> dict[int, set[str]]:
    """contact id -> keys of its open memberships, as evaluate_contact left them in this
    event batch (the only writer of memberships while a batch runs); empty outside one."""
    known: dict[int, set[str]] = batch_memo(session, "segment_keys", dict)
    return known


def in_segment(session: Session, key: str, contact_id: int) -> bool:
    """True when the contact has an open membership of the segment."""
    known = _known_memberships(session).get(contact_id)
    if known is not None:  # evaluated by this event batch: no query
        return key in known
    found = session.scalar(
        select(SegmentMembership.id)
        .join(Segment, Segment.id == SegmentMembership.segment_id)
        .where(
            Segment.key == key,
            SegmentMembership.contact_id == contact_id,
            SegmentMembership.exited_at.is_(None),
        )
        .limit(1)
    )
    return found is not None
