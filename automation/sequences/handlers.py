"""process_event handlers of the sequences stream: exits, wait_until wake-ups, triggers.

Order matters: an event first ends enrollments it exits, then wakes waiting ones, then
enrols (so an order.created that exits cart recovery can still start order_status).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from automation.core.clock import now
from automation.core.models import Event
from automation.sequences.exits import exit_on_event, exit_on_events, wake_waiting, wake_waiting_for
from automation.sequences.triggers import enroll_from_event, enroll_from_events


def sequence_exits(session: Session, event: Event) -> None:
    """End enrollments whose exit_on matches this event, the moment it arrives."""
    exit_on_event(session, event, now())


def sequence_wakeups(session: Session, event: Event) -> None:
    """Resume enrollments waiting (wait_until) for this event."""
    wake_waiting(session, event, now())


def sequence_triggers(session: Session, event: Event) -> None:
    """Enrol the event's contact in sequences this event triggers."""
    enroll_from_event(session, event, now())


def sequence_triggers_round(session: Session, events: list[Event]) -> None:
    """sequence_triggers for a round of an event batch, set-based."""
    enroll_from_events(session, events, now())


def sequence_exits_round(session: Session, events: list[Event]) -> None:
    """sequence_exits for a round of an event batch (one query for the running enrollments)."""
    exit_on_events(session, events, now())


def sequence_wakeups_round(session: Session, events: list[Event]) -> None:
    """sequence_wakeups for a round of an event batch (one query for the waiting ones)."""
    wake_waiting_for(session, events, now())
