"""Send a batch of outbox rows: claim -> policy -> compose -> provider -> outcome.

Plain functions taking a Session (the actors only wire them to queues).

1. automation.delivery.claim moves due rows to ``sending`` and commits: a row is claimed
   by at most one worker.
2. Policy (automation.delivery.policy) decides send / defer / skip / fail; a marketing
   SMS or Zalo message to a number on the do-not-advertise list is skipped (``dnc``); a ZNS
   promotion-tag template to a contact without an order, or an OA consultation message
   to a contact Zalo answered -230 for, is skipped (automation.delivery.zalo_rules).
3. automation.delivery.compose renders the template with links rewritten and the
   channel's decorations; the rendering and link targets are stored and committed before
   the provider call (a click can only arrive after its target is saved).
   A marketing SMS whose provider pools joins an advertising pool instead (automation.delivery.
   pools); pools that are due are sent at the end of the batch and by the scheduler.
4. The adapter sends (an adapter that batches gets the whole group in one
   session), paced by the provider's rate limiter; automation.delivery.outcome writes
   what happened. A channel paused by its provider (automation.delivery.pauses: the ZNS
   daily quota) is not called: its rows are held (fallback now, or deferred to the reset).

A worker killed between the claim and the status update leaves the row ``sending``;
automation.delivery.stale re-queues it after OUTBOX_STALE_SECONDS. That resend is the
one case where a provider may see a message twice; the row id is passed as the
provider's idempotency key (RequestId, Message-ID, tracking_id) for that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from automation.core.clock import now
from automation.core.config import Settings, get_settings
from automation.core.db import one_of
from automation.core.models import Contact, Enrollment, Event, Message
from automation.core.vocabulary import Status
from automation.delivery import dnc, pools
from automation.delivery.calls import GATHER_SECONDS, send_group
from automation.delivery.candidate import Candidate
from automation.delivery.channels import get_adapter, provider_name
from automation.delivery.claim import claim_rows
from automation.delivery.compose import prepare, store_prepared
from automation.delivery.context import address_for, build_context, context_events
from automation.delivery.facts import load as load_facts
from automation.delivery.outcome import BatchResult, apply, hold, permanent, skip, store_sent
from automation.delivery.pauses import paused
from automation.delivery.policy import evaluate
from automation.delivery.zalo_rules import refusal
from automation.messages.errors import TemplateProblem
from automation.messages.lookup import snapshot
from channels.base import Channel, OutboundMessage
from channels.errors import PermanentError, QuotaExhausted
from channels.errors import TransientError as ChannelTransientError

log = logging.getLogger(__name__)
AdapterSource = Callable[[str], tuple[Channel, str]]


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
    messages = claim_rows(session, ids, at)
    if not messages:
        return result
    contact_ids = {m.contact_id for m in messages}
    found = session.scalars(select(Contact).where(one_of(session, Contact.id, contact_ids)))
    contacts = {c.id: c for c in found}
    triggers = context_events(session, messages)
    candidates = []
    for m in messages:
        contact = contacts[m.contact_id]
        if not m.address:  # written with the renderings by store_prepared
            set_committed_value(m, "address", address_for(m.channel, contact))
        candidates.append(Candidate(m, contact, m.address))
    # Each template file is looked up once for the batch, and the rows' new addresses are
    # written with their renderings (one statement for the batch) after the policy queries.
    with snapshot(), session.no_autoflush:
        ready, pooled = _prepare_all(session, candidates, triggers, at, settings, result)
    store_prepared(session, messages)
    if pooled:
        pools.join(session, pooled, at, settings)
    session.commit()
    for channel, group in ready.items():
        adapter, provider = resolve(channel)
        _send_channel(session, channel, group, adapter, provider, result, settings)
    if pooled:
        adapter, provider = resolve("sms")
        if isinstance(adapter, pools.Advertiser):
            pools.flush_due(session, now(), adapter, provider, settings)
    return result


Ready = dict[str, list[tuple[Message, Contact, OutboundMessage]]]


def _prepare_all(
    session: Session,
    candidates: list[Candidate],
    triggers: dict[int, tuple[Enrollment, list[Event]]],
    at: datetime,
    settings: Settings,
    result: BatchResult,
) -> tuple[Ready, list[tuple[Message, OutboundMessage]]]:
    """Decide each candidate (policy, DNC, Zalo rules) and render those that go.

    Returns the rows to send per channel and the rows that join an advertising pool;
    the others are written (deferred, skipped, failed) on the session.
    """
    ready: Ready = {}
    facts = load_facts(session, candidates, settings.secret_key)  # DNC list included
    listed = facts.listed
    pooled: list[tuple[Message, OutboundMessage]] = []
    decisions = evaluate(session, candidates, at, settings, facts=facts)
    for cand, decision in zip(candidates, decisions, strict=True):
        m = cand.message
        if decision.action == "defer":
            m.status, m.not_before, m.error = Status.DEFERRED, decision.not_before, decision.reason
            result.deferred.append(m.id)
        elif decision.action == "skip":
            skip(session, m, cand.contact, decision.reason or "not allowed", result)
        elif decision.action == "fail":
            permanent(session, m, cand.contact, decision.reason or "undeliverable", result)
        elif m.id in listed:
            skip(session, m, cand.contact, dnc.REASON, result)
        elif refused := refusal(session, m, cand.contact, at, settings):
            skip(session, m, cand.contact, refused, result)
        else:
            enrollment, events = triggers.get(m.enrollment_id or -1, (None, []))
            try:
                ctx = build_context(m, cand.contact, enrollment, events, settings)
                outbound = prepare(m, cand.contact, ctx, settings)
            except (TemplateProblem, PermanentError) as exc:
                permanent(session, m, cand.contact, str(exc), result)
                continue
            if pools.poolable(m, settings):
                pooled.append((m, outbound))
                continue
            ready.setdefault(m.channel, []).append((m, cand.contact, outbound))
    return ready, pooled


def _send_channel(
    session: Session,
    channel: str,
    group: list[tuple[Message, Contact, OutboundMessage]],
    adapter: Channel,
    provider: str,
    result: BatchResult,
    settings: Settings,
) -> None:
    """Send one channel's ready rows and commit their outcomes as the calls return.

    Outcomes are committed in groups: as soon as the oldest uncommitted one is
    GATHER_SECONDS old, and at the end. A worker killed mid-batch so leaves only the
    calls in flight, and outcomes up to about twice that old, as "sending" (re-sent later with
    the same idempotency key). The channel's pause is read once per group and again
    after a provider says its quota is spent; rows not started by then are held
    (automation.delivery.pauses).
    """
    held = paused(session, channel, now())
    started: set[int] = set()
    if held is None:
        since: float | None = None  # when the oldest uncommitted outcome arrived
        stop = lambda: held is not None  # noqa: E731 - read at each call start
        for returned in send_group(adapter, provider, [o for *_, o in group], settings, stop):
            for index, outcome in returned:
                message, contact, _ = group[index]
                started.add(index)
                apply(session, message, contact, provider, outcome, result, settings)
                if isinstance(outcome, QuotaExhausted):
                    held = paused(session, channel, now())
            if returned and since is None:
                since = time.monotonic()
            if since is not None and time.monotonic() - since >= GATHER_SECONDS:
                store_sent(session, result)
                session.commit()
                since = None
        store_sent(session, result)
    if held is not None:  # e.g. the ZNS daily quota ran out: no call until reset
        for index, (message, contact, _) in enumerate(group):
            if index not in started:
                hold(session, message, contact, held, result)
    session.commit()


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
