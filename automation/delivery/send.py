"""Send outbox rows: claim -> policy -> render -> provider -> status, event, fallback.

Plain functions taking a Session (the actors only wire them to queues).

1. ``claim_many`` moves ``queued``/``deferred`` rows whose ``not_before`` has passed to
   ``sending`` with ``attempts + 1`` in one conditional UPDATE and commits: a row is
   claimed by at most one worker, so a duplicated actor message cannot send twice.
2. Policy (automation.delivery.policy) decides send / defer / skip / fail.
3. The template is rendered with links rewritten; marketing SMS/e-mail get the
   Decree 91 label and opt-out; the rendering and link targets are stored and committed
   before the provider call (a click can only arrive after its target is saved).
4. The adapter sends (e-mail batches share one SMTP session), paced by the provider's
   rate limiter. SendResult -> ``sent`` + provider id + segments + ``message.sent`` event.
   PermanentError -> ``failed`` + reason + fallback message on the next channel.
   TransientError -> back to ``queued`` with the error and ``not_before`` = now + backoff
   (the caller retries), or ``failed`` (dead letter) once ``DELIVERY_MAX_ATTEMPTS`` is hit.

A worker killed between the claim and the status update leaves the row ``sending``;
automation.delivery.stale re-queues it after OUTBOX_STALE_SECONDS. That resend is the
one case where a provider may see a message twice; the row id is passed as the
provider's idempotency key (eSMS RequestId, Message-ID, Zalo tracking_id) for that.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, case, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from automation.core.clock import now
from automation.core.config import Settings, get_settings
from automation.core.eventlog import record_event
from automation.core.models import Contact, Event, Message
from automation.delivery.channels import get_adapter, provider_name
from automation.delivery.context import (
    address_for,
    build_context,
    context_events,
    messenger_window_open,
)
from automation.delivery.policy import Candidate, evaluate, profile_from_settings
from automation.delivery.ratelimit import limiter_for
from automation.ingest.callback_urls import esms_callback_url, twilio_callback_url
from automation.messages.compliance import decorate_email, decorate_sms
from automation.messages.errors import TemplateProblem
from automation.messages.lookup import section
from automation.messages.render import render
from automation.messages.rewrite import links_mapping
from automation.messages.zns import effective_zns_id
from channels.base import Channel, OutboundMessage, SendResult
from channels.errors import ChannelError, PermanentError
from channels.errors import TransientError as ChannelTransientError
from channels.segments import count_segments

log = logging.getLogger(__name__)
SENDABLE = ("queued", "deferred")
AdapterSource = Callable[[str], tuple[Channel, str]]


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
    sent_events: list[dict[str, Any]] = field(default_factory=list, repr=False)
    sent_rows: list[dict[str, Any]] = field(default_factory=list, repr=False)


def claim_many(session: Session, ids: list[int], at: datetime | None = None) -> list[int]:
    """Claim sendable rows (queued/deferred, due) as ``sending``; commit; return their ids."""
    if not ids:
        return []
    at = at or now()
    stmt = (
        update(Message)
        .where(
            Message.id.in_(ids),
            Message.status.in_(SENDABLE),
            or_(Message.not_before.is_(None), Message.not_before <= at),
        )
        .values(status="sending", attempts=Message.attempts + 1, updated_at=at)
        .returning(Message.id)
        .execution_options(synchronize_session=False)
    )
    claimed = sorted(session.execute(stmt).scalars().all())
    session.commit()
    return claimed


def claim(session: Session, message_id: int) -> bool:
    """Claim one row (see :func:`claim_many`); False if it is not sendable now."""
    return bool(claim_many(session, [message_id]))


def backoff_ms(attempts: int, settings: Settings, retry_after: float | None = None) -> int:
    """Exponential backoff for the next try, capped; at least the provider's Retry-After."""
    delay = settings.delivery_min_backoff_ms * 2 ** max(attempts - 1, 0)
    delay = min(delay, settings.delivery_max_backoff_ms)
    if retry_after:
        delay = max(delay, int(retry_after * 1000))
    return int(delay)


def prepare(
    message: Message,
    contact: Contact,
    context: dict[str, Any],
    settings: Settings,
) -> OutboundMessage:
    """Render the row's template for its channel and build the OutboundMessage.

    Stores ``rendered``, ``links`` and ``segments`` on the row; raises TemplateProblem.
    """
    rendered = render(
        message.template,
        message.channel,
        context,
        contact.locale,
        settings=settings,
        message_id=message.id,
    )
    unsubscribe = str(context["unsubscribe_url"])
    marketing = message.purpose == "marketing" and profile_from_settings(settings).name != "none"
    if marketing and message.channel == "sms":
        rendered.text = decorate_sms(rendered.text, unsubscribe, settings)
    if marketing and message.channel == "email":
        rendered.subject, rendered.html, rendered.text = decorate_email(
            rendered.subject or "",
            rendered.html,
            rendered.text,
            unsubscribe,
            rendered.locale,
            settings,
        )
    if message.channel == "zalo_zns":
        rendered.template_id = effective_zns_id(
            message.template, rendered.locale, rendered.template_id or "", settings
        )
    segments = None
    if message.channel == "sms":
        segments = count_segments(rendered.text).segments
        if segments > settings.sms_max_segments:
            raise TemplateProblem(
                f"template {message.template!r} sms: {segments} segments > "
                f"SMS_MAX_SEGMENTS={settings.sms_max_segments}"
            )
    message.rendered = {
        k: v
        for k, v in {
            "locale": rendered.locale,
            "subject": rendered.subject,
            "text": rendered.text,
            "html": rendered.html,
            "template_id": rendered.template_id,
            "params": rendered.params or None,
            "buttons": rendered.buttons or None,
        }.items()
        if v is not None
    }
    message.links = links_mapping(rendered)
    message.segments = segments
    full_name = " ".join(p for p in (contact.last_name, contact.first_name) if p) or None
    tag = rendered.tag or ("POST_PURCHASE_UPDATE" if message.purpose != "marketing" else None)
    callback = None
    if message.channel == "sms":
        callback = (
            twilio_callback_url(message.id, settings)
            if settings.sms_provider == "twilio"
            else esms_callback_url(message.id, settings)
        )
    assert message.address is not None
    return OutboundMessage(
        id=message.id,
        channel=message.channel,
        to=message.address,
        text=rendered.text,
        purpose=message.purpose,
        subject=rendered.subject,
        html=rendered.html,
        template_id=rendered.template_id,
        template_data=dict(rendered.params),
        buttons=list(rendered.buttons),
        unsubscribe_url=unsubscribe if message.channel == "email" else None,
        unsubscribe_mailto=settings.unsubscribe_mailto if message.channel == "email" else None,
        callback_url=callback,
        to_name=full_name,
        window_open=messenger_window_open(contact) if message.channel == "messenger" else None,
        message_tag=tag if message.channel == "messenger" else None,
    )


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
            status="queued",
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


def _event(session: Session, kind: str, message: Message, **props: Any) -> None:
    properties = {
        "message_id": message.id,
        "channel": message.channel,
        "template": message.template,
        "step_key": message.step_key,
        "enrollment_id": message.enrollment_id,
        "purpose": message.purpose,
        **props,
    }
    record_event(session, kind, message.contact_id, properties, f"{kind}:{message.id}")


def _event_row(kind: str, message: Message, at: datetime, **props: Any) -> dict[str, Any]:
    properties = {
        "message_id": message.id,
        "channel": message.channel,
        "template": message.template,
        "step_key": message.step_key,
        "enrollment_id": message.enrollment_id,
        "purpose": message.purpose,
        **props,
    }
    return {
        "source": "internal",
        "source_event_id": f"{kind}:{message.id}",
        "type": kind,
        "contact_id": message.contact_id,
        "occurred_at": at,
        "received_at": at,
        "payload": {"properties": properties},
    }


# A delivery receipt committed while the call was in flight must win over "sent".
_messages = cast(Table, Message.__table__)
_MARK_SENT = (
    update(_messages)
    .where(_messages.c.id == bindparam("mid"))
    .values(
        status=case((_messages.c.status == "sending", "sent"), else_=_messages.c.status),
        provider=bindparam("provider"),
        provider_message_id=bindparam("provider_message_id"),
        segments=bindparam("segments"),
        sent_at=bindparam("sent_at"),
        updated_at=bindparam("updated_at"),
        error=bindparam("error"),
    )
)


def _store_sent(session: Session, result: BatchResult) -> None:
    """Write the sent rows of a wave and their ``message.sent`` events (two statements)."""
    if result.sent_rows:
        session.execute(_MARK_SENT, result.sent_rows)
        result.sent_rows.clear()
    _store_events(session, result.sent_events)
    result.sent_events.clear()


def _store_events(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert a batch of internal events at once, ignoring duplicates (like record_event)."""
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert_fn: Any = postgresql.insert if dialect == "postgresql" else sqlite.insert
    session.execute(
        insert_fn(Event).on_conflict_do_nothing(index_elements=["source", "source_event_id"]),
        rows,
    )


def _permanent(
    session: Session, message: Message, contact: Contact, reason: str, result: BatchResult
) -> None:
    message.status, message.error = "failed", reason
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


def _skip(
    session: Session, message: Message, contact: Contact, reason: str, result: BatchResult
) -> None:
    """Not allowed on this channel (no consent, opted out): try the step's fallback channels."""
    message.status, message.error = "skipped", reason
    result.skipped.append(message.id)
    _fall_back(session, message, contact, reason, result)


def _fall_back(
    session: Session, message: Message, contact: Contact, reason: str, result: BatchResult
) -> Message | None:
    fallback = create_fallback(session, message, contact)
    if fallback is not None:
        result.fallbacks.append(fallback.id)
        message.error = f"{reason}; fallback -> {fallback.channel} (message {fallback.id})"
        message.rendered = {
            **(message.rendered or {}),
            "fallback": {"channel": fallback.channel, "message_id": fallback.id},
        }
    return fallback


def _apply(
    session: Session,
    message: Message,
    contact: Contact,
    provider: str,
    outcome: SendResult | ChannelError,
    result: BatchResult,
    settings: Settings,
) -> None:
    at = now()
    if isinstance(outcome, SendResult):
        # Written in bulk by _store_sent (one statement per wave); the in-memory row is
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
        result.sent_events.append(
            _event_row(
                "message.sent",
                message,
                at,
                provider=provider,
                provider_message_id=message.provider_message_id,
            )
        )
        return
    message.provider = provider
    message.updated_at = at
    if isinstance(outcome, PermanentError):
        _permanent(session, message, contact, f"{provider}: {outcome.reason}", result)
    else:
        reason = f"{provider}: {outcome.reason}"
        result.errors[message.id] = reason
        if message.attempts >= settings.delivery_max_attempts:
            message.status = "failed"
            message.error = f"gave up after {message.attempts} attempts: {reason}"
            result.dead.append(message.id)
            _event(session, "message.failed", message, reason=message.error)
        else:
            retry_after = getattr(outcome, "retry_after", None)
            delay = backoff_ms(message.attempts, settings, retry_after)
            message.status, message.error = "queued", reason
            message.not_before = at + timedelta(milliseconds=delay)
            result.retry.append(message.id)
            result.retry_delay_ms = max(result.retry_delay_ms, delay)


def _send_group(
    adapter: Channel, provider: str, outbound: list[OutboundMessage], settings: Settings
) -> Iterator[list[tuple[int, SendResult | ChannelError]]]:
    """Send one chunk, yielding [(index, outcome), ...] for the calls that have returned.

    SMTP sends the chunk in one session; other providers get one call per message, all in
    flight at once. The chunk's slots are reserved with one limiter call and call i starts
    at its own slot (first + i x spacing), so concurrent calls keep the provider's pace.
    """
    limiter = limiter_for(provider, settings)
    limiter.acquire(len(outbound))
    if provider == "smtp":
        yield list(enumerate(adapter.send_batch(outbound)))
        return
    first = time.monotonic()

    def paced(index: int, msg: OutboundMessage) -> SendResult | ChannelError:
        delay = first + index * limiter.spacing - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        return _send_one(adapter, provider, msg)

    futures = {_pool().submit(paced, i, msg): i for i, msg in enumerate(outbound)}
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield [(futures[future], future.result()) for future in done]


def _send_one(adapter: Channel, provider: str, msg: OutboundMessage) -> SendResult | ChannelError:
    try:
        return adapter.send(msg)
    except ChannelError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - an adapter bug must not strand the row
        log.exception("adapter %s crashed on message %s", provider, msg.id)
        return ChannelTransientError(f"adapter error: {exc!r}")


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """Threads for concurrent provider calls (HTTP waits, not CPU), shared by the process."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="send")
        return _executor


def deliver_batch(
    session: Session,
    ids: list[int],
    adapters: AdapterSource | None = None,
    settings: Settings | None = None,
) -> BatchResult:
    """Claim, check, render and send a batch of outbox rows; see the module docstring."""
    settings = settings or get_settings()
    resolve = adapters or (lambda channel: get_adapter(channel, settings))
    result = BatchResult()
    at = now()
    claimed = claim_many(session, ids, at)
    if not claimed:
        return result
    fresh = {"populate_existing": True}  # the claim UPDATE bypassed the identity map
    messages = list(
        session.scalars(select(Message).where(Message.id.in_(claimed)).execution_options(**fresh))
    )
    messages.sort(key=lambda m: m.id)
    contact_ids = {m.contact_id for m in messages}
    contacts = {
        c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))
    }
    triggers = context_events(session, messages)
    candidates = []
    for m in messages:
        contact = contacts[m.contact_id]
        m.address = m.address or address_for(m.channel, contact)
        candidates.append(Candidate(m, contact, m.address))
    ready: dict[str, list[tuple[Message, Contact, OutboundMessage]]] = {}
    for cand, decision in zip(candidates, evaluate(session, candidates, at, settings), strict=True):
        m = cand.message
        if decision.action == "defer":
            m.status, m.not_before, m.error = "deferred", decision.not_before, decision.reason
            result.deferred.append(m.id)
        elif decision.action == "skip":
            _skip(session, m, cand.contact, decision.reason or "not allowed", result)
        elif decision.action == "fail":
            _permanent(session, m, cand.contact, decision.reason or "undeliverable", result)
        else:
            enrollment, events = triggers.get(m.enrollment_id or -1, (None, []))
            try:
                ctx = build_context(m, cand.contact, enrollment, events, settings)
                outbound = prepare(m, cand.contact, ctx, settings)
            except (TemplateProblem, PermanentError) as exc:
                _permanent(session, m, cand.contact, str(exc), result)
                continue
            ready.setdefault(m.channel, []).append((m, cand.contact, outbound))
    session.commit()
    for channel, group in ready.items():
        adapter, provider = resolve(channel)
        # SMTP sends the group in one session. Other providers get DELIVERY_CONCURRENCY calls
        # in flight at once, and outcomes are committed as soon as their calls return (those
        # that returned together, together), so a worker killed mid-batch leaves only the
        # calls in flight as "sending" (re-sent later with the same idempotency key), never
        # one already known as sent.
        size = len(group) if provider == "smtp" else settings.delivery_concurrency
        for start in range(0, len(group), size):
            chunk = group[start : start + size]
            for returned in _send_group(adapter, provider, [o for *_, o in chunk], settings):
                for index, outcome in returned:
                    message, contact, _ = chunk[index]
                    _apply(session, message, contact, provider, outcome, result, settings)
                _store_sent(session, result)
                session.commit()
    return result


def deliver(
    session: Session, message_id: int, channel_adapter: Channel, settings: Settings | None = None
) -> BatchResult:
    """Send one row through ``channel_adapter``; TransientError re-raised after re-queueing."""
    provider = provider_name(channel_adapter)
    result = deliver_batch(
        session, [message_id], adapters=lambda _c: (channel_adapter, provider), settings=settings
    )
    if result.retry:
        raise ChannelTransientError(result.errors.get(message_id, "transient failure"))
    return result
