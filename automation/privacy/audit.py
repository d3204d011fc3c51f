"""The audit log: who (OS user or MACTL_ACTOR) did what with `mactl`, and when.

Actions: ``apply``, ``export``, ``forget``, ``dlq.replay``. ``target`` and ``details``
name rows by id and files by path; they never hold an address or a name.
"""

from __future__ import annotations

import getpass
import os
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from automation.core.models_privacy import AuditEntry


def current_actor() -> str:
    """MACTL_ACTOR when set, else the OS user running the command."""
    actor = os.environ.get("MACTL_ACTOR", "").strip()
    if actor:
        return actor[:120]
    try:
        return getpass.getuser()[:120]
    except (KeyError, OSError):  # no passwd entry (containers)
        return f"uid:{os.getuid()}"


def record(
    session: Session,
    action: str,
    target: str | None = None,
    details: dict[str, Any] | None = None,
    actor: str | None = None,
) -> AuditEntry:
    """Add one audit entry to the caller's transaction (written when it commits)."""
    entry = AuditEntry(
        actor=actor or current_actor(), action=action, target=target, details=details or {}
    )
    session.add(entry)
    session.flush()
    return entry


def entries(session: Session, limit: int = 100, action: str | None = None) -> list[dict[str, Any]]:
    """The newest audit entries first, as JSON-able dicts."""
    stmt = select(AuditEntry).order_by(AuditEntry.at.desc(), AuditEntry.id.desc()).limit(limit)
    if action:
        stmt = stmt.where(AuditEntry.action == action)
    return [
        {
            "id": e.id,
            "at": e.at,
            "actor": e.actor,
            "action": e.action,
            "target": e.target,
            "details": e.details or {},
        }
        for e in session.scalars(stmt)
    ]
