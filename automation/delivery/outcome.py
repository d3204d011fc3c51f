"""Write what happened to a claimed row: sent, retry later, failed, skipped, fallback.

Plain functions on a Session. SendResult -> ``sent`` + provider id + segments +
``message.sent`` event (written in bulk per wave). PermanentError -> ``failed`` + reason
+ fallback message on the next channel; an SMTP 5xx also suppresses the address (hard
bounce) and an "unreachable" code (automation.delivery.unreachable) marks the contact
unreachable on the channel. TransientError -> back to ``queued`` with the
error and ``not_before`` = now + backoff, or ``failed`` (dead letter) once
``DELIVERY_MAX_ATTEMPTS`` is hit (an SMTP 4xx then counts as a soft bounce).
QuotaExhausted -> the channel is paused until the quota
resets (automation.delivery.pauses) and the row is held: its fallback goes now, or it
waits (``deferred``) until the reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, select, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from automation.contacts.reachability import mark_unreachable, record_soft_bounce, suppress
from automation.core.bulk import rows_json
from automation.core.clock import now
from automation.core.config import Settings
from automation.core.db import dialect_insert, is_postgres
from automation.core.eventlog import record_event
from automation.core.models import Contact, Event, Message
from automation.core.vocabulary import Status
from automation.delivery.context import address_for
from automation.delivery.pauses import Pause, next_midnight, pause
from automation.delivery.unreachable import is_hard_bounce, is_soft_bounce, unreachable_reason
from automation.messages.errors import TemplateProblem
from automation.messages.lookup import section
from channels.base import SendResult
from channels.errors import ChannelError, PermanentError, QuotaExhausted


@dataclass
class BatchResult:
    """What happened to each id of a batch (ids not claimed are in none of the lists)."""

    sent: list[int] = field(default_factory=list)
    deferred: list[int] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    failed: list[int] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)
    dead: list[int] = field(default_factory=list)
    fallbacks: list[int] = field(default_factory=list)
    retry_delay_ms: int = 0
    errors: dict[int, str] = field(default_factory=dict)
    sent_rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    sent_events: list[dict[str, Any]] = field(default_factory=list, repr=False)  # not PostgreSQL


def backoff_ms(attempts: int, settings: Settings, retry_after: float | None = None) -> int:
    """Exponential backoff for the next try, capped; at least the provider's Retry-After."""
    delay = settings.delivery_min_backoff_ms * 2 ** max(attempts - 1, 0)
    delay = min(delay, settings.delivery_max_backoff_ms)
    if retry_after:
        delay = max(delay, int(retry_after * 1000))
    return int(delay)


def create_fallback(session: Session, message: Message, contact: Contact) -> Message | None:
    """The next usable fallback channel's Message (queued), or None when there is none.

    Step key ``<step>#fallback:<channel>``, ``fallback_from_id`` set, the remaining
    fallback list carried over. Channels without an address or template section are
    skipped. Idempotent: an existing fallback row for the step is returned.
    """
    remaining = [c for c in (message.fallback or []) if c != message.channel]
    while remaining:
        channel = remaining.pop(0)
        if address_for(channel, contact) is None:
            continue
        try:
            section(message.template, channel, contact.locale)
        except TemplateProblem:
            continue
        step_key = f"{message.step_key}#fallback:{channel}"
        existing = session.scalar(
            select(Message).where(
                Message.fallback_from_id == message.id, Message.step_key == step_key
            )
        )
        if existing is not None:
            return existing
        fallback = Message(
            enrollment_id=message.enrollment_id,
            step_key=step_key,
            contact_id=message.contact_id,
            channel=channel,
            purpose=message.purpose,
            template=message.template,
            status=Status.QUEUED,
            attempts=0,
            fallback=remaining,
            fallback_from_id=message.id,
            rendered={},
            links={},
        )
        session.add(fallback)
        session.flush()
        return fallback
    return None


def _properties(message: Message, props: dict[str, Any]) -> dict[str, Any]:
    return {
        "message_id": message.id,
        "channel": message.channel,
        "template": message.template,
        "step_key": message.step_key,
        "enrollment_id": message.enrollment_id,
        "purpose": message.purpose,
        **props,
    }


def _event(session: Session, kind: str, message: Message, **props: Any) -> None:
    properties = _properties(message, props)
    record_event(session, kind, message.contact_id, properties, f"{kind}:{message.id}")


def _event_row(kind: str, message: Message, at: datetime, **props: Any) -> dict[str, Any]:
    return {
        "source": "internal",
        "source_event_id": f"{kind}:{message.id}",
        "type": kind,
        "contact_id": message.contact_id,
        "occurred_at": at,
        "received_at": at,
        "payload": {"properties": _properties(message, props)},
    }


# A delivery receipt committed while the call was in flight must win over "sent".
_messages = cast(Table, Message.__table__)
_MARK_SENT = (
    update(_messages)
    .where(_messages.c.id == bindparam("mid"))
    .values(
        status=case((_messages.c.status == Status.SENDING, Status.SENT), else_=_messages.c.status),
        provider=bindparam("provider"),
        provider_message_id=bindparam("provider_message_id"),
        segments=bindparam("segments"),
        sent_at=bindparam("sent_at"),
        updated_at=bindparam("updated_at"),
        error=bindparam("error"),
    )
)


# PostgreSQL: one statement per wave, whatever its size (rows passed as one JSON document,
# automation.core.bulk): the rows are marked sent and their ``message.sent`` events
# built from what the UPDATE returns.
_SENT_PG = text(
    """
    WITH sent AS (
        UPDATE messages AS m
        SET status = CASE WHEN m.status = :sending THEN :sent ELSE m.status END,
            provider = v.provider, provider_message_id = v.provider_message_id,
            segments = v.segments, sent_at = v.sent_at, updated_at = v.sent_at, error = NULL
        FROM jsonb_to_recordset(CAST(:rows AS jsonb))
             AS v(mid bigint, provider text, provider_message_id text, segments integer,
                  sent_at timestamptz)
        WHERE m.id = v.mid AND m.id = ANY(CAST(:ids AS bigint[]))
        RETURNING m.id, m.contact_id, m.channel, m.template, m.step_key, m.enrollment_id,
                  m.purpose, v.provider, v.provider_message_id AS pmid, v.sent_at AS at
    )
    INSERT INTO events (source, source_event_id, type, contact_id, occurred_at, received_at,
                        payload, attempts)
    SELECT 'internal', 'message.sent:' || id, 'message.sent', contact_id, at, at,
           jsonb_build_object('properties', jsonb_build_object(
               'message_id', id, 'channel', channel, 'template', template,
               'step_key', step_key, 'enrollment_id', enrollment_id, 'purpose', purpose,
               'provider', provider, 'provider_message_id', pmid)), 0
    FROM sent
    ON CONFLICT (source, source_event_id) DO NOTHING
    """
)


def store_sent(session: Session, result: BatchResult) -> None:
    """Write the sent rows of a wave and their ``message.sent`` events (one statement on
    PostgreSQL)."""
    rows = result.sent_rows
    if rows and is_postgres(session):
        session.execute(
            _SENT_PG,
            {
                "sending": Status.SENDING,
                "sent": Status.SENT,
                "rows": rows_json(rows),
                "ids": [r["mid"] for r in rows],
            },
        )
    elif rows:
        session.execute(_MARK_SENT, rows)
        session.execute(  # Core, not the ORM bulk path: nothing here needs an identity map
            dialect_insert(session)(Event.__table__).on_conflict_do_nothing(
                index_elements=["source", "source_event_id"]
            ),
            result.sent_events,
        )
    rows.clear()
    result.sent_events.clear()


def permanent(
    session: Session, message: Message, contact: Contact, reason: str, result: BatchResult
) -> None:
    """Will never succeed on this channel: ``failed``, ``message.failed``, fallback."""
    message.status, message.error = Status.FAILED, reason
    result.failed.append(message.id)
    result.errors[message.id] = reason
    fallback = _fall_back(session, message, contact, reason, result)
    _event(
        session,
        "message.failed",
        message,
        reason=reason,
        fallback_message_id=fallback.id if fallback else None,
    )


def skip(
    session: Session, message: Message, contact: Contact, reason: str, result: BatchResult
) -> None:
    """Not allowed on this channel (no consent, opted out): try the step's fallback channels."""
    message.status, message.error = Status.SKIPPED, reason
    result.skipped.append(message.id)
    _fall_back(session, message, contact, reason, result)


def hold(
    session: Session, message: Message, contact: Contact, held: Pause, result: BatchResult
) -> None:
    """The channel is paused: the step's fallback goes now; without one the row waits."""
    reason = f"{message.channel} paused until {held.until:%Y-%m-%d %H:%M} UTC ({held.reason})"
    if create_fallback(session, message, contact) is not None:
        skip(session, message, contact, reason, result)
    else:
        message.status, message.not_before, message.error = Status.DEFERRED, held.until, reason
        result.deferred.append(message.id)


def _fall_back(
    session: Session, message: Message, contact: Contact, reason: str, result: BatchResult
) -> Message | None:
    fallback = fall_back(session, message, contact, reason)
    if fallback is not None:
        result.fallbacks.append(fallback.id)
    return fallback


def fall_back(session: Session, message: Message, contact: Contact, reason: str) -> Message | None:
    """Create the step's next fallback message (once) and record it on ``message``.

    Used at send time and for a late failure reported by a provider callback; the
    caller queues the returned row. None when no fallback channel is usable.
    """
    fallback = create_fallback(session, message, contact)
    if fallback is not None:
        message.error = f"{reason}; fallback -> {fallback.channel} (message {fallback.id})"
        message.rendered = {
            **(message.rendered or {}),
            "fallback": {"channel": fallback.channel, "message_id": fallback.id},
        }
    return fallback


def note_permanent(
    session: Session, message: Message, provider: str, error: PermanentError
) -> None:
    """What a permanent answer says about the address: hard bounce or unreachable contact."""
    if is_hard_bounce(message.channel, error.code) and message.address:
        suppress(session, message.channel, message.address, "hard_bounce", "all")
        return
    why = unreachable_reason(provider, error.code)
    if why is not None:
        mark_unreachable(session, message, f"{why} ({error.reason})", error.code)


def apply(
    session: Session,
    message: Message,
    contact: Contact,
    provider: str,
    outcome: SendResult | ChannelError,
    result: BatchResult,
    settings: Settings,
) -> None:
    """Write one provider outcome (see the module docstring); sent rows wait for store_sent."""
    at = now()
    if isinstance(outcome, SendResult):
        # Written in bulk by store_sent (one statement per wave); the in-memory row is
        # updated without marking it dirty so the ORM does not write it a second time.
        values = {
            "provider": provider,
            "provider_message_id": outcome.provider_message_id or message.provider_message_id,
            "segments": outcome.segments if outcome.segments is not None else message.segments,
            "sent_at": at,
            "updated_at": at,
            "error": None,
        }
        for key, value in values.items():
            set_committed_value(message, key, value)
        result.sent.append(message.id)
        result.sent_rows.append({"mid": message.id, **values})
        if not is_postgres(session):  # PostgreSQL builds the event in store_sent's statement
            pmid = message.provider_message_id
            result.sent_events.append(
                _event_row("message.sent", message, at, provider=provider, provider_message_id=pmid)
            )
        return
    message.provider = provider
    message.updated_at = at
    if isinstance(outcome, QuotaExhausted):
        until = next_midnight(at, outcome.timezone)
        held = pause(session, message.channel, until, f"{provider}: {outcome.reason}")
        hold(session, message, contact, held, result)
    elif isinstance(outcome, PermanentError):
        note_permanent(session, message, provider, outcome)
        permanent(session, message, contact, f"{provider}: {outcome.reason}", result)
    else:
        reason = f"{provider}: {outcome.reason}"
        result.errors[message.id] = reason
        if message.attempts >= settings.delivery_max_attempts:
            message.status = Status.FAILED
            message.error = f"gave up after {message.attempts} attempts: {reason}"
            result.dead.append(message.id)
            _event(session, "message.failed", message, reason=message.error)
            if is_soft_bounce(message.channel, outcome.code):
                record_soft_bounce(session, message, provider, reason, settings)
        else:
            retry_after = getattr(outcome, "retry_after", None)
            delay = backoff_ms(message.attempts, settings, retry_after)
            message.status, message.error = Status.QUEUED, reason
            message.not_before = at + timedelta(milliseconds=delay)
            result.retry.append(message.id)
            result.retry_delay_ms = max(result.retry_delay_ms, delay)
