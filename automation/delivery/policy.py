"""Send-time policy: consent, suppression, quiet hours, frequency caps, Decree 91 profile.

Checked when a message is sent (not only at enrolment). Decisions:

* ``send``  - go ahead (marketing SMS/e-mail then get the label and opt-out, see below);
* ``defer`` - outside the allowed hours or over the cap: status ``deferred`` with
  ``not_before`` = the next allowed time; never dropped;
* ``skip``  - not allowed to contact (no consent, opted out, complained): status ``skipped``;
* ``fail``  - cannot be delivered on this channel (no address, hard-bounced address, the
  contact marked unreachable there, e.g. Zalo -118): status ``failed`` and the step's
  fallback channel is tried, without calling the provider.

Profiles (COMPLIANCE_PROFILE):

``decree91`` (default; Decree 91/2020/ND-CP on advertising messages) for ``marketing``:
  prior consent: marketing e-mail and SMS need a *granted* marketing consent row (no
  row = no consent); Zalo and Messenger need "not denied" (the contact followed the OA
  or wrote to the Page; Messenger's 24 h window is enforced by the adapter);
  advertising SMS only 07:00-22:00 in the contact's timezone;
  at most 3 advertising SMS and 3 advertising e-mails per contact per 24 h;
  ``[QC]`` (AD_LABEL) first in the SMS text and e-mail subject; an opt-out instruction
  last (SMS_OPTOUT_TEXT for SMS, an unsubscribe footer for e-mail): applied by
  automation.messages.compliance.
``none``: marketing needs "not denied" consent; no caps, windows or labels.

FREQUENCY_CAPS and SEND_WINDOWS (JSON, per consent channel) override either profile.
Transactional messages skip all marketing rules but are never sent to a hard-bounced
address (or one suppressed with scope ``all``), nor when transactional consent is denied.
An erased address (`mactl contacts forget`) is found through its keyed hash and skipped
for every purpose.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from automation.core.clock import ensure_utc
from automation.core.config import Settings, get_settings
from automation.core.models import Message
from automation.core.vocabulary import CONSENT_CHANNEL, MARKETING, Status
from automation.delivery.candidate import Candidate
from automation.delivery.facts import Facts, Mark
from automation.delivery.facts import load as load_facts

HARD_REASONS = frozenset({"hard_bounce", "invalid_address", "bounced"})
WINDOW = timedelta(hours=24)


@dataclass(frozen=True)
class ComplianceProfile:
    """The marketing rules in force; built from settings by :func:`profile_from_settings`."""

    name: str
    require_granted: frozenset[str] = frozenset()
    caps: dict[str, int] = field(default_factory=dict)
    windows: dict[str, tuple[time, time]] = field(default_factory=dict)
    ad_label: str | None = None
    sms_optout: str | None = None
    email_footer: bool = False


@dataclass
class Decision:
    """What to do with one message now."""

    action: str  # send | defer | skip | fail
    reason: str | None = None
    not_before: datetime | None = None


def parse_window(value: str, where: str = "SEND_WINDOWS") -> tuple[time, time]:
    """``"07:00-22:00"`` -> (07:00, 22:00); ValueError naming the setting otherwise."""
    try:
        start, end = (time.fromisoformat(part.strip()) for part in value.split("-", 1))
    except ValueError:
        raise ValueError(f"{where}: {value!r} is not HH:MM-HH:MM (e.g. 07:00-22:00)") from None
    return start, end


def profile_from_settings(settings: Settings | None = None) -> ComplianceProfile:
    """The compliance profile: COMPLIANCE_PROFILE plus FREQUENCY_CAPS / SEND_WINDOWS overrides."""
    settings = settings or get_settings()
    windows = {k: parse_window(v) for k, v in settings.send_windows.items()}
    if settings.compliance_profile == "none":
        return ComplianceProfile("none", caps=dict(settings.frequency_caps), windows=windows)
    return ComplianceProfile(
        "decree91",
        require_granted=frozenset({"email", "sms"}),
        caps={"sms": 3, "email": 3, **settings.frequency_caps},
        windows={"sms": (time(7), time(22)), **windows},
        ad_label=settings.ad_label or None,
        sms_optout=settings.sms_optout_text or None,
        email_footer=True,
    )


def _zone(name: str | None, settings: Settings) -> ZoneInfo:
    try:
        return ZoneInfo(name or settings.default_timezone)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(settings.default_timezone)


def next_allowed(now: datetime, window: tuple[time, time], tz: ZoneInfo) -> datetime | None:
    """None when ``now`` is inside the local window, else the next window start (UTC-aware)."""
    local = now.astimezone(tz)
    start, end = window
    t = local.time()
    inside = start <= t < end if start < end else (t >= start or t < end)
    if inside:
        return None
    day = local.date() if t < start else local.date() + timedelta(days=1)
    return datetime.combine(day, start, tzinfo=tz).astimezone(now.tzinfo)


def _recent_counts(
    session: Session,
    items: list[Candidate],
    profile: ComplianceProfile,
    now: datetime,
    stale_seconds: int,
) -> tuple[Counter[tuple[int, str]], dict[tuple[int, str], datetime]]:
    """Marketing messages sent (or being sent) per (contact, consent channel) in 24 h."""
    capped = [
        c
        for c in items
        if c.message.purpose == MARKETING
        and CONSENT_CHANNEL.get(c.message.channel) in profile.caps
    ]
    counts: Counter[tuple[int, str]] = Counter()
    oldest: dict[tuple[int, str], datetime] = {}
    if not capped:
        return counts, oldest
    own = [c.message.id for c in items]
    since, busy_since = now - WINDOW, now - timedelta(seconds=stale_seconds)
    stmt = (
        select(Message.contact_id, Message.channel, func.count(), func.min(Message.sent_at))
        .where(
            Message.contact_id.in_({c.contact.id for c in capped}),
            Message.purpose == MARKETING,
            Message.id.not_in(own),
            or_(
                Message.sent_at >= since,
                (Message.status == Status.SENDING) & (Message.updated_at >= busy_since),
                Message.status == Status.POOLED,
            ),
        )
        .group_by(Message.contact_id, Message.channel)
    )
    for contact_id, channel, count, first in session.execute(stmt):
        key = (contact_id, CONSENT_CHANNEL.get(channel, channel))
        counts[key] += int(count)
        if first is not None:
            first = ensure_utc(first)
            oldest[key] = min(oldest.get(key, first), first)
    return counts, oldest


def evaluate(
    session: Session,
    items: list[Candidate],
    now: datetime,
    settings: Settings | None = None,
    profile: ComplianceProfile | None = None,
    facts: Facts | None = None,
) -> list[Decision]:
    """Decide for every candidate (two queries: the batch's facts, automation.delivery.facts,
    unless passed in; the frequency caps' counts)."""
    settings = settings or get_settings()
    profile = profile or profile_from_settings(settings)
    if facts is None:
        facts = load_facts(session, items, settings.secret_key)
    suppressed, unreachable, consents = facts.suppressed, facts.unreachable, facts.consents
    counts, oldest = _recent_counts(session, items, profile, now, settings.outbox_stale_seconds)
    decisions: list[Decision] = []
    for item in items:
        row = unreachable.get((item.contact.id, item.message.channel))
        if item.address and row is not None and row.address == item.address:
            decision = Decision("fail", f"unreachable on {row.channel}: {row.reason}")
        else:
            decision = _decide(item, now, settings, profile, suppressed, consents, counts, oldest)
        if decision.action == "send" and item.message.purpose == MARKETING:
            counts[(item.contact.id, CONSENT_CHANNEL.get(item.message.channel, ""))] += 1
        decisions.append(decision)
    return decisions


def _decide(
    item: Candidate,
    now: datetime,
    settings: Settings,
    profile: ComplianceProfile,
    suppressed: dict[tuple[str, str], Mark],
    consents: dict[tuple[int, str, str], str],
    counts: Counter[tuple[int, str]],
    oldest: dict[tuple[int, str], datetime],
) -> Decision:
    msg, contact = item.message, item.contact
    cchan = CONSENT_CHANNEL.get(msg.channel, msg.channel)
    marketing = msg.purpose == MARKETING
    if not item.address:
        return Decision("fail", f"contact {contact.id} has no {msg.channel} address")
    for key in ((msg.channel, item.address), (cchan, item.address)):
        row = suppressed.get(key)
        if row is None:
            continue
        if row.reason in HARD_REASONS:
            return Decision("fail", f"address suppressed ({row.reason})")
        if marketing or row.scope == "all":
            return Decision("skip", f"address suppressed ({row.reason})")
    status = consents.get((contact.id, cchan, msg.purpose))
    if status == "denied":
        return Decision("skip", f"{msg.purpose} consent denied for {cchan}")
    if not marketing:
        return Decision("send")
    if cchan in profile.require_granted and status != "granted":
        return Decision("skip", f"no prior marketing consent for {cchan} ({profile.name})")
    window = profile.windows.get(cchan)
    if window is not None:
        later = next_allowed(now, window, _zone(contact.timezone, settings))
        if later is not None:
            hours = f"{window[0]:%H:%M}-{window[1]:%H:%M}"
            return Decision("defer", f"outside allowed hours {hours} for {cchan}", later)
    cap = profile.caps.get(cchan)
    if cap is not None and counts[(contact.id, cchan)] >= cap:
        first = oldest.get((contact.id, cchan))
        later = (
            first + WINDOW
            if first is not None and first + WINDOW > now
            else now + timedelta(hours=1)
        )
        return Decision("defer", f"frequency cap {cap}/24h reached for {cchan}", later)
    return Decision("send")

