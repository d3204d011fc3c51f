"""A claimed outbox row on its way through the send-time checks (policy, facts, DNC)."""

from __future__ import annotations

from dataclasses import dataclass

from automation.core.models import Contact, Message


@dataclass
class Candidate:
    """One claimed message with its contact and resolved address, ready for a decision."""

    message: Message
    contact: Contact
    address: str | None
