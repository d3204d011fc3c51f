"""Unsubscribe ends marketing at once: a contact's running marketing enrollments exit.

Consent is per channel, but an opt-out on any channel (link, one-click POST, provider
opt-out, complaint) exits every running *marketing* enrollment of the contact with reason
``unsubscribed`` and skips their queued marketing messages on every channel: the person
asked us to stop advertising, and Decree 91 says stop at once. Transactional sequences
(order status) continue. New marketing enrollments still send on channels whose consent
stands; the unsubscribed channel is refused by the send-time policy.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from automation.core.models import Enrollment, Message, SequenceVersion
from automation.core.vocabulary import MARKETING, Status
from automation.sequences.engine import RUNNING, finish, lock_enrollment
from automation.sequences.store import version_definition

log = logging.getLogger(__name__)
REASON = "unsubscribed"


def exit_marketing(session: Session, contact_id: int, at: datetime) -> list[int]:
    """Exit the contact's running marketing enrollments; returns their ids. Flushes."""
    rows = session.execute(
        select(Enrollment.id, SequenceVersion)
        .join(SequenceVersion, SequenceVersion.id == Enrollment.version_id)
        .where(Enrollment.contact_id == contact_id, Enrollment.state.in_(RUNNING))
        .order_by(Enrollment.id)
    ).all()
    exited: list[int] = []
    for enrollment_id, version in rows:
        if version_definition(version).purpose != MARKETING:
            continue
        enrollment = lock_enrollment(session, enrollment_id)
        if enrollment is None or enrollment.state not in RUNNING:
            continue
        finish(enrollment, "exited", REASON, at)
        exited.append(enrollment_id)
        log.info("enrollment %s exited (%s)", enrollment_id, REASON)
    if exited:
        session.execute(
            update(Message)
            .where(
                Message.enrollment_id.in_(exited),
                Message.purpose == MARKETING,
                Message.status.in_((Status.QUEUED, Status.DEFERRED)),
            )
            .values(status=Status.SKIPPED, error=REASON, updated_at=at)
            .execution_options(synchronize_session="fetch")
        )
    session.flush()
    return exited


