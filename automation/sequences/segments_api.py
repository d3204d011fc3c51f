"""The few segment functions sequences use, found in the segments package at call time.

Sequences must not fail to import while the segments package is still growing, so the
functions are looked up lazily; ``in_segment`` falls back to the memberships table.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.models import Segment, SegmentMembership

_PLACES: dict[str, tuple[str, ...]] = {
    "load_rule": ("automation.segments", "automation.segments.rules"),
    "matches": ("automation.segments", "automation.segments.evaluate"),
    "in_segment": ("automation.segments", "automation.segments.membership"),
}


def _find(name: str) -> Callable[..., Any] | None:
    for module_name in _PLACES[name]:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        fn = getattr(module, name, None)
        if callable(fn):
            return fn  # type: ignore[no-any-return]
    return None


def available() -> bool:
    """True when the segment rule language is installed."""
    return _find("load_rule") is not None and _find("matches") is not None


def load_rule(obj: Any, where: str) -> Any:
    """Parse a segment rule (raises the segments stream's RuleError on bad input)."""
    fn = _find("load_rule")
    if fn is None:
        raise RuntimeError("segment rules are not installed (automation.segments.load_rule)")
    return fn(obj, where=where)


def rule_matches(session: Session, rule: Any, contact_id: int, now: datetime) -> bool:
    """Evaluate a parsed rule for one contact."""
    fn = _find("matches")
    if fn is None:
        raise RuntimeError("segment rules are not installed (automation.segments.matches)")
    return bool(fn(session, rule, contact_id, now))


def in_segment(session: Session, key: str, contact_id: int) -> bool:
    """True when the contact is a current member of segment ``key``."""
    fn = _find("in_segment")
    if fn is not None:
        return bool(fn(session, key, contact_id))
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
