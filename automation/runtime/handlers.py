"""The process_event handler table: what happens to every stored event, in order.

Order matters: facts first (orders, carts), then segment membership, then sequences
(exits, wait_until wake-ups, triggers), which may react to the segment transitions
recorded just before. ``install()`` hands the table to automation.core.processing.
"""

from __future__ import annotations

from automation.analytics.conversions import record_conversions, record_conversions_of
from automation.contacts.locks import lock_batch_contacts
from automation.contacts.orders import apply_commerce_event, apply_commerce_events
from automation.core import processing
from automation.core.processing import BatchStep, EventHandler
from automation.segments.handlers import on_event as evaluate_segments
from automation.segments.handlers import on_events as evaluate_segments_round
from automation.sequences.handlers import (
    sequence_exits,
    sequence_exits_round,
    sequence_triggers,
    sequence_triggers_round,
    sequence_wakeups,
    sequence_wakeups_round,
)
from automation.sequences.triggers import note_triggered
from automation.sequences.waited import note_waited_events

HANDLERS: tuple[EventHandler, ...] = (
    apply_commerce_event,
    record_conversions,  # after orders are stored
    evaluate_segments,
    sequence_exits,
    sequence_wakeups,
    sequence_triggers,
)
#: Run once per event batch before the handlers (automation.core.processing.PREPARE).
PREPARE: tuple[BatchStep, ...] = (lock_batch_contacts, note_triggered, note_waited_events)
#: Set-based forms, run once per round of a batch (automation.core.rounds).
ROUND_FORMS: dict[EventHandler, BatchStep] = {
    apply_commerce_event: apply_commerce_events,
    record_conversions: record_conversions_of,
    evaluate_segments: evaluate_segments_round,
    sequence_exits: sequence_exits_round,
    sequence_wakeups: sequence_wakeups_round,
    sequence_triggers: sequence_triggers_round,
}


def install() -> None:
    """Make HANDLERS the process_event handlers of this process."""
    processing.use_handlers(HANDLERS, PREPARE, ROUND_FORMS)
