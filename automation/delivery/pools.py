"""Advertising pools: marketing SMS with identical content sent as one request.

Some providers take advertising SMS only as one text for many phones (their sender
declares ``Pooling``: 30-5,000 phones for the Vietnamese brandname gateway). A
marketing SMS row that passed the send-time policy (consent, window, cap, DNC) and
was composed with the pool's opt-out instruction (no per-message token) *joins* the
open pool of its exact text: status ``pooled``, one ``sms_pool_members`` row. A pool
stays open the provider's window (its ``Pooling.window`` setting, 300 s by default)
from its first row, or until it holds the maximum (rows joining meanwhile still join).
:func:`flush_due` then, per due pool:

1. claims it (``open`` -> ``sending``, compare-and-set, committed): one worker sends it;
2. applies the send-time rules again: rows opted out or DNC-listed meanwhile are
   skipped (an opt-out stops at once), rows now outside the allowed hours go back to
   ``deferred`` (they join a new pool when the window opens);
3. below the minimum: each row goes to its next fallback channel (skipped, reason
   ``pool below 30 phones``), nothing is sent;
4. else sends one advertising request per part of at most the maximum (split evenly);
   ``RequestId`` is the pool id (``<pool id>.<first row id>`` per part when split), so a
   resend after a crash is refused as a duplicate instead of sent twice; each part's rows become
   ``sent`` with the part's SMSID in one transaction.

A pool left ``sending`` by a dead worker is claimed again after OUTBOX_STALE_SECONDS.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from automation import links
from automation.core import outbox
from automation.core.clock import now
from automation.core.config import Settings, get_settings
from automation.core.models import Contact, Message
from automation.core.models_sms import DncPhone, SmsPool, SmsPoolMember
from automation.core.vocabulary import MARKETING, Status
from automation.delivery import dnc
from automation.delivery.candidate import Candidate
from automation.delivery.channels import get_adapter
from automation.delivery.facts import load as load_facts
from automation.delivery.outcome import BatchResult, apply, backoff_ms, permanent, skip, store_sent
from automation.delivery.policy import evaluate
from automation.delivery.providers import pooling_for
from automation.delivery.providers.base import Pooling
from automation.messages.rendered import Rendered
from automation.messages.rewrite import rewrite_links
from channels.base import OutboundMessage, SendResult
from channels.errors import ChannelError, PermanentError

log = logging.getLogger(__name__)

OPEN, SENDING, SENT, EXPIRED = "open", "sending", "sent", "expired"
OPTOUT_PATH = "/u/sms"


@runtime_checkable
class Advertiser(Protocol):
    """What a pool is sent through: an adapter with an ``advertise`` call."""

    def advertise(
        self, content: str, phones: list[str], request_id: str, callback_url: str | None = None
    ) -> SendResult:
        """Send ``content`` to ``phones`` in one advertising request."""
        ...


def poolable(message: Message, settings: Settings) -> bool:
    """True when ``message`` is marketing its channel's provider must send pooled."""
    return message.purpose == MARKETING and pooling_for(message.channel, settings) is not None


def _spec(settings: Settings) -> Pooling:
    spec = pooling_for("sms", settings)
    assert spec is not None
    return spec


def optout_url(settings: Settings) -> str:
    """The page where anyone opts a phone number out of advertising SMS (no token)."""
    return settings.public_base_url.rstrip("/") + OPTOUT_PATH


def join(
    session: Session,
    drafts: list[tuple[Message, OutboundMessage]],
    at: datetime,
    settings: Settings,
) -> list[int]:
    """Put each row in the open pool of its exact text (a new pool if none); flushes.

    One pool lookup and one size update per distinct text, members inserted in bulk.
    The pool's links become per-pool click URLs; the rows keep the pool's final text.
    Returns the pool ids.
    """
    by_text: dict[str, list[tuple[Message, OutboundMessage]]] = {}
    for message, outbound in drafts:
        by_text.setdefault(outbound.text, []).append((message, outbound))
    joined = []
    for text, group in by_text.items():
        pool = _open_pool(session, text, len(group), at, settings)
        session.execute(
            insert(SmsPoolMember),
            [
                {"message_id": m.id, "pool_id": pool.id, "phone": o.to, "joined_at": at}
                for m, o in group
            ],
        )
        for message, _ in group:
            message.status, message.error = Status.POOLED, None
            message.rendered = {
                **(message.rendered or {}),
                "text": pool.content,
                "pool_id": pool.id,
            }
            message.links = {}
        joined.append(pool.id)
    session.flush()
    return joined


def _open_pool(
    session: Session, text: str, count: int, at: datetime, settings: Settings
) -> SmsPool:
    """The open pool for ``text`` grown by ``count`` rows (compare-and-set), or a new one."""
    key = hashlib.sha256(text.encode()).hexdigest()
    for candidate in session.scalars(
        select(SmsPool)
        .where(SmsPool.content_hash == key, SmsPool.status == OPEN)
        .order_by(SmsPool.id)
    ):
        grown = session.execute(
            update(SmsPool)
            .where(SmsPool.id == candidate.id, SmsPool.status == OPEN)
            .values(size=SmsPool.size + count)
        )
        if grown.rowcount:  # type: ignore[attr-defined]
            return candidate
    pool = SmsPool(
        content_hash=key,
        content=text,
        links={},
        size=count,
        closes_at=at + timedelta(seconds=_spec(settings).window(settings)),
    )
    session.add(pool)
    session.flush()
    pool.content, pool.links = _tracked(pool.id, text, settings)
    return pool


def _tracked(pool_id: int, text: str, settings: Settings) -> tuple[str, dict[str, str]]:
    """The pool text with its links as per-pool click URLs, and the link targets."""
    out = Rendered(channel="sms", locale="vi", text=text)
    rewrite_links(out, 0, settings, lambda i: links.pool_click_url(pool_id, i, settings))
    return out.text, {str(i): url for i, url in enumerate(out.links)}


def due_pools(session: Session, at: datetime, settings: Settings) -> list[int]:
    """Ids of pools to send now: window over, full, or left ``sending`` by a dead worker."""
    stale = at - timedelta(seconds=settings.outbox_stale_seconds)
    return list(
        session.scalars(
            select(SmsPool.id)
            .where(
                (
                    (SmsPool.status == OPEN)
                    & ((SmsPool.closes_at <= at) | (SmsPool.size >= _spec(settings).max_size))
                )
                | ((SmsPool.status == SENDING) & (SmsPool.closes_at <= stale))
            )
            .order_by(SmsPool.id)
        )
    )


def claim(session: Session, pool_id: int, at: datetime, settings: Settings) -> bool:
    """Move a due pool to ``sending`` (compare-and-set) and commit; False if taken."""
    stale = at - timedelta(seconds=settings.outbox_stale_seconds)
    claimed = session.execute(
        update(SmsPool)
        .where(
            SmsPool.id == pool_id,
            (
                (SmsPool.status == OPEN)
                | ((SmsPool.status == SENDING) & (SmsPool.closes_at <= stale))
            ),
        )
        .values(status=SENDING, closes_at=at)
    )
    session.commit()
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


def parts(ids: list[int], most: int) -> list[list[int]]:
    """Split sorted row ids into even parts of at most ``most`` (5,001 -> 2,501 + 2,500)."""
    count = -(-len(ids) // most)
    size, extra = divmod(len(ids), count)
    out, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        out.append(ids[start:end])
        start = end
    return out


def flush_due(
    session: Session,
    at: datetime,
    advertiser: Advertiser,
    provider: str,
    settings: Settings | None = None,
) -> BatchResult:
    """Claim and send every due pool (see the module docstring); commits per step."""
    settings = settings or get_settings()
    result = BatchResult()
    if pooling_for("sms", settings) is None:
        return result
    for pool_id in due_pools(session, at, settings):
        if claim(session, pool_id, at, settings):
            _flush(session, pool_id, advertiser, provider, settings, result)
    return result


def _commit(session: Session, result: BatchResult) -> None:
    """Commit; fallback rows created since the last commit go to their queues after it."""
    handed = session.info.setdefault("pools.handed_off", set())
    new = [i for i in result.fallbacks if i not in handed]
    outbox.after_commit(session, "messages", new)
    handed.update(new)
    session.commit()


def _members(session: Session, pool_id: int) -> list[tuple[Message, Contact, str]]:
    rows = session.execute(
        select(Message, Contact, SmsPoolMember.phone)
        .join(SmsPoolMember, SmsPoolMember.message_id == Message.id)
        .join(Contact, Contact.id == Message.contact_id)
        .where(SmsPoolMember.pool_id == pool_id)
        .order_by(Message.id)
        .execution_options(populate_existing=True)
    )
    return [(m, c, phone) for m, c, phone in rows]


def _recheck(
    session: Session,
    members: list[tuple[Message, Contact, str]],
    result: BatchResult,
    settings: Settings,
) -> list[tuple[Message, Contact, str]]:
    """Apply the send-time rules again at the flush; the rows still allowed to go.

    Opted out or DNC-listed meanwhile: skipped. Outside the allowed hours now (the window
    ended after 22:00, say): back to ``deferred`` until the next allowed time, out of
    the pool (it joins a new pool then).
    """
    pooled = [(m, c, phone) for m, c, phone in members if m.status == Status.POOLED]
    candidates = [Candidate(m, c, phone) for m, c, phone in pooled]
    facts = load_facts(session, candidates, settings.secret_key)  # DNC list included
    decisions = evaluate(session, candidates, now(), settings, facts=facts)
    listed = facts.listed
    allowed, released = [], []
    for (message, contact, phone), decision in zip(pooled, decisions, strict=True):
        reason = decision.reason or decision.action
        if decision.action == "defer":
            message.status, message.not_before, message.error = (
                Status.DEFERRED,
                decision.not_before,
                reason,
            )
            released.append(message.id)
            result.deferred.append(message.id)
        elif decision.action == "skip":
            skip(session, message, contact, reason, result)
        elif decision.action == "fail":
            permanent(session, message, contact, reason, result)
        elif message.id in listed:
            skip(session, message, contact, dnc.REASON, result)
        else:
            allowed.append((message, contact, phone))
    if released:
        session.execute(delete(SmsPoolMember).where(SmsPoolMember.message_id.in_(released)))
    return allowed


def _flush(
    session: Session,
    pool_id: int,
    advertiser: Advertiser,
    provider: str,
    settings: Settings,
    result: BatchResult,
) -> None:
    spec = _spec(settings)
    pool = session.get(SmsPool, pool_id, populate_existing=True)
    assert pool is not None
    members = _members(session, pool_id)
    waiting = _recheck(session, members, result, settings)
    if not any(m.status == Status.SENT for m, *_ in members) and len(waiting) < spec.min_size:
        patient = [m for m, *_ in waiting if (m.rendered or {}).get("pool") == "wait"]
        for message, contact, _ in waiting:
            if message not in patient:
                skip(session, message, contact, f"pool below {spec.min_size} phones", result)
        if patient:  # steps that say `pool: wait`: the pool stays open another window
            pool.status, pool.closes_at = OPEN, now() + timedelta(seconds=spec.window(settings))
            pool.error = f"{len(waiting)} phones < {spec.min_size}: waiting another window"
        else:
            pool.status, pool.error = EXPIRED, f"{len(waiting)} phones < {spec.min_size}"
        _commit(session, result)
        log.info("pool %s below minimum with %s phones", pool_id, len(waiting))
        return
    _commit(session, result)
    everyone = [m.id for m, *_ in members if m.status != Status.DEFERRED]
    split = parts(everyone, spec.max_size)
    by_id = {m.id: (m, c, phone) for m, c, phone in waiting}
    for part in split:
        rows = [by_id[i] for i in part if i in by_id]
        if not rows:
            continue
        request_id = str(pool_id) if len(split) == 1 else f"{pool_id}.{part[0]}"
        url = spec.callback_url(pool_id, settings) if spec.callback_url else None
        try:
            outcome: SendResult | ChannelError = advertiser.advertise(
                pool.content, [phone for *_, phone in rows], request_id, url
            )
        except ChannelError as exc:
            outcome = exc
        _record(session, pool, rows, provider, outcome, result, settings)
    if all(m.status != Status.POOLED for m, *_ in members):  # every part went
        pool.status, pool.sent_at = SENT, pool.sent_at or now()
    _commit(session, result)


def _record(
    session: Session,
    pool: SmsPool,
    rows: list[tuple[Message, Contact, str]],
    provider: str,
    outcome: SendResult | ChannelError,
    result: BatchResult,
    settings: Settings,
) -> None:
    """Write one part's outcome on its rows in one transaction."""
    ids = [m.id for m, *_ in rows]
    if isinstance(outcome, SendResult):
        if outcome.provider_message_id:
            pool.provider_message_ids = [*pool.provider_message_ids, outcome.provider_message_id]
        for message, contact, _ in rows:
            apply(session, message, contact, provider, outcome, result, settings)
            message.status = Status.SENT
        store_sent(session, result)
    elif isinstance(outcome, PermanentError):
        for message, contact, _ in rows:
            permanent(session, message, contact, f"{provider}: {outcome.reason}", result)
    else:
        # Transient (account, network): the whole pool is tried again later.
        pool.error = f"{provider}: {outcome.reason}"
        delay = timedelta(
            milliseconds=backoff_ms(1, settings, getattr(outcome, "retry_after", None))
        )
        pool.closes_at = now() + delay - timedelta(seconds=settings.outbox_stale_seconds)
        result.retry.extend(ids)
        log.warning("pool %s: %s; tried again later", pool.id, outcome.reason)
    _commit(session, result)


def record_click(session: Session, pool_id: int, index: int) -> str | None:
    """Count a click on link ``index`` of pool ``pool_id``; its target, or None if unknown."""
    pool = session.get(SmsPool, pool_id)
    target = (pool.links or {}).get(str(index)) if pool is not None else None
    if not isinstance(target, str):
        return None
    session.execute(update(SmsPool).where(SmsPool.id == pool_id).values(clicks=SmsPool.clicks + 1))
    return target


def summary(session: Session) -> dict[str, int]:
    """Open pools, rows waiting in them, and numbers on the do-not-advertise list (doctor)."""
    waiting = (
        select(func.count())
        .select_from(SmsPoolMember)
        .join(SmsPool, SmsPool.id == SmsPoolMember.pool_id)
        .where(SmsPool.status == OPEN)
    )
    return {
        "open_pools": int(session.scalar(select(func.count()).where(SmsPool.status == OPEN)) or 0),
        "rows_waiting": int(session.scalar(waiting) or 0),
        "dnc_numbers": int(session.scalar(select(func.count()).select_from(DncPhone)) or 0),
    }


def flush_pools(session: Session, at: datetime) -> int:
    """Scheduler task: send the due pools through the configured SMS adapter."""
    settings = get_settings()
    adapter, provider = get_adapter("sms", settings)
    if not isinstance(adapter, Advertiser) or not due_pools(session, at, settings):
        return 0
    result = flush_due(session, at, adapter, provider, settings)
    return len(result.sent) + len(result.skipped) + len(result.failed)
