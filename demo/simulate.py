"""`mactl demo`: a month of a Vietnamese shop on a simulated clock, end to end.

In a temporary SQLite database (unless a database URL is given) the demo applies the
shipped playbooks, imports order history (some of it more than 90 days old), then plays
a month of shop activity hour by hour on a FrozenClock: leads, checkouts (some
abandoned), orders created / paid / shipped / delivered, cancellations, and clicks on
the messages that were sent. Every shop event goes through the native webhook parser,
the ingest store and process_event; every hour runs the scheduler pass, so waits
elapse and carts are detected as abandoned. Messages are sent with delivery's
deliver_batch through the file transport (no channel has credentials in the demo), so
the outbox file shows exactly what customers would receive.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, exists, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from automation.analytics.queries import Cohort
from automation.analytics.report import build_report
from automation.core import clock
from automation.core.config import get_settings
from automation.core.models import Cart, Contact, Enrollment, Event, Message, Order, Sequence
from demo import engagement
from demo.data import Person, Planned, Story, make_people
from demo.engagement import SENT_STATUSES

PLAYBOOKS = Path(__file__).resolve().parent.parent / "playbooks"
DEFAULT_START = datetime(2026, 10, 1, 0, 0, tzinfo=UTC)  # 07:00 in Ho Chi Minh City
#: Variables cleared for the demo so every channel uses the file transport.
CREDENTIALS = (
    "REDIS_URL", "SMTP_URL", "ESMS_API_KEY", "ESMS_SECRET_KEY", "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN", "ZALO_ACCESS_TOKEN", "ZALO_REFRESH_TOKEN", "ZALO_APP_SECRET",
    "FACEBOOK_PAGE_TOKEN", "TEMPLATES_DIR",
)  # fmt: skip
#: Run the scheduler pass at least this often even when nothing is due (segments by time).
SEGMENT_REFRESH = timedelta(hours=6)
#: Outbox rows handed to one deliver_batch call.
DELIVER_BATCH = 500


@dataclass
class DemoOptions:
    """What to simulate."""

    contacts: int = 500
    days: int = 30
    seed: int = 42
    database_url: str | None = None
    outbox_file: str | None = None
    start: datetime = DEFAULT_START
    playbooks: Path = PLAYBOOKS


Progress = Callable[[str], None]


@contextmanager
def demo_environment(database_url: str, outbox_file: str) -> Iterator[None]:
    """Point settings at the demo database and outbox, with every channel credential unset."""
    from automation.core.config import get_settings
    from automation.core.db import dispose_all

    names = (*CREDENTIALS, "DATABASE_URL", "OUTBOX_FILE", "SEGMENT_REFRESH_MINUTES")
    saved = {name: os.environ.get(name) for name in names}
    for name in CREDENTIALS:
        os.environ.pop(name, None)
    os.environ["DATABASE_URL"] = database_url
    os.environ["OUTBOX_FILE"] = outbox_file
    # Time-based segments (days-long windows) caught up with the clock every SEGMENT_REFRESH
    # of simulated time, not on every hourly pass; events keep them current per contact.
    os.environ["SEGMENT_REFRESH_MINUTES"] = str(int(SEGMENT_REFRESH.total_seconds() // 60))
    get_settings.cache_clear()
    dispose_all()
    try:
        yield
    finally:
        _close_adapters()
        _restore_sinks()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        get_settings.cache_clear()
        dispose_all()


def _close_adapters() -> None:
    from automation.delivery.channels import close_adapters

    close_adapters()


def _load_handlers() -> None:
    """Register every process_event handler (facts, segments, sequences); committed outbox
    rows and events go nowhere: the demo is its own worker and finds them in the tables
    (drain, deliver), as the scheduler does when a queue message is lost."""
    from automation.core import outbox
    from automation.runtime import wiring

    wiring.install()
    for kind in ("messages", "events"):
        outbox.register_sink(kind, _from_the_tables)


def _use_sink(sim: Simulation) -> None:
    from automation.core import outbox

    outbox.register_sink("messages", sim.note_queued)


def _from_the_tables(_bind: Any, _ids: list[int]) -> None:
    """The demo's outbox sink: nothing to enqueue (there is no broker to consume it)."""


def _restore_sinks() -> None:
    """The runtime's outbox sinks again, as wiring.install leaves them."""
    from automation.runtime import wiring

    wiring.install()


class Simulation:
    """The running demo: a session factory, the frozen clock and the pending clicks."""

    def __init__(self, factory: sessionmaker[Session], fake: clock.FrozenClock, seed: int) -> None:
        self.factory = factory
        self.clock = fake
        self.seed = seed
        self.clicks: list[tuple[datetime, int, str]] = []  # (when, message id, kind)
        self.seen_sent: set[int] = set()
        self.shop_events = 0
        self.last_pass: datetime | None = None
        self.scanned_until: datetime | None = None
        self.queued = False  # outbox rows committed since the drain's round began

    def note_queued(self, _bind: Any, ids: list[int]) -> None:
        """The demo's sink for committed outbox rows: deliver finds them in the table."""
        self.queued = self.queued or bool(ids)

    # -- feeding events -----------------------------------------------------------------

    def ingest(self, payloads: list[dict[str, Any]], drain: bool = True) -> list[int]:
        """Parse native payloads, store them (one transaction) and process the new events."""
        from automation.core.processing import process_events
        from automation.inbox.store import store_events
        from automation.ingest.sources.native import NativeSource

        events = NativeSource().parse("", {"events": payloads})
        with self.factory() as session:
            result = store_events(session, "native", events)
            session.commit()
            if result.new_ids:
                process_events(session, list(result.new_ids))
        self.shop_events += len(result.new_ids)
        if drain:
            self.drain()
        return result.new_ids

    def drain(self, deliver: bool = True, settled: bool = False) -> None:
        """Process every stored, unprocessed event and (unless ``deliver`` is False: a
        scheduler pass follows at this instant and delivers once for both) send what is
        due, until quiet; then decide the opens and clicks of what was sent. ``settled``:
        a drain at this instant has just left no event unprocessed (no need to look)."""
        from automation.core.processing import process_events

        sent_any = False
        for round_ in range(50):
            self.queued = False
            if settled and round_ == 0:
                ids: list[int] = []
            else:
                ids = self._process_pending(process_events)
            # The clock stands still in a drain: after its first delivery, a row can only
            # be due if processing the events just queued it (handed to note_queued).
            due = deliver and (round_ == 0 or self.queued)
            sent = self.deliver() if due else 0
            sent_any = sent_any or bool(sent)
            if not ids and not sent:
                break
        if sent_any:
            self.schedule_engagement()

    def _process_pending(self, process_events: Callable[[Session, list[int]], int]) -> list[int]:
        """Process the stored, unprocessed events in batches of 200; their ids."""
        with self.factory() as session:
            ids = list(session.scalars(_UNPROCESSED))
            for start in range(0, len(ids), 200):
                process_events(session, ids[start : start + 200])
        return ids

    def deliver(self) -> int:
        """deliver_batch every queued/deferred row that is due; how many rows it was given.

        Asks again only when a batch was full or left rows that may be due now (fallbacks,
        retries, deferrals): otherwise nothing new can be due at this instant."""
        from automation.delivery.send import deliver_batch

        at = self.clock.now()
        total = 0
        for _ in range(20):
            with self.factory() as session:
                ids = list(session.scalars(_SENDABLE, {"at": at}))
                if not ids:
                    break
                result = deliver_batch(session, ids)
                session.commit()
                total += len(ids)
            if len(ids) < DELIVER_BATCH and not (
                result.fallbacks or result.retry or result.deferred
            ):
                break
        return total

    def schedule_engagement(self) -> None:
        """For each newly sent message, decide (deterministically, by the message's identity
        rather than its row id) whether and when it is opened/clicked."""
        since = self.scanned_until
        self.scanned_until = self.clock.now()
        with self.factory() as session:
            rows = engagement.sent_since(session, since)
        for message_id, channel, sent_at, email, phone, zalo, psid, seq, entered, step in rows:
            if message_id in self.seen_sent or sent_at is None:
                continue
            self.seen_sent.add(message_id)
            person = engagement.person_of(email, phone, zalo, psid)
            name = engagement.identity(person, seq, entered, step, channel)
            for when, kind in engagement.decide(self.seed, name, channel, sent_at):
                self.clicks.append((when, message_id, kind))
        self.clicks.sort()

    def engage_until(self, until: datetime) -> None:
        """Record the opens and clicks due before ``until`` (as tracking would), each at its
        own time, in one transaction; then process the events they emitted together, as
        of the last of them (one batch, as the production workers take them)."""
        from automation.core.processing import process_events
        from automation.feedback.results import record_message_event

        count = next((i for i, c in enumerate(self.clicks) if c[0] >= until), len(self.clicks))
        due, self.clicks = self.clicks[:count], self.clicks[count:]
        if not due:
            return
        event_ids: list[int] = []
        with self.factory() as session:
            for when, message_id, kind in due:
                self.clock.set(max(when, self.clock.now()))
                message = session.get(Message, message_id)
                if message is None:
                    continue
                target = next(iter((message.links or {}).values()), None)
                result = record_message_event(
                    session,
                    message,
                    kind,
                    "demo",
                    f"demo-{kind}-{message_id}",
                    payload={"url": target} if isinstance(target, str) else {},
                    properties={"link_index": 0} if kind == "clicked" else {},
                )
                event_ids += result.event_ids
            session.commit()
            if event_ids:
                process_events(session, event_ids)

    def run_pass(self, at: datetime) -> None:
        """One scheduler pass as of ``at``, then process and deliver what it produced."""
        from automation.runtime.scheduler import run_pass

        self.clock.set(at)
        run_pass(self.factory, at)
        self.last_pass = at
        self.drain()

    def pass_due(self, at: datetime, every: timedelta) -> bool:
        """True when the scheduler has work by ``at`` (waits, carts, deferred sends) or
        ``every`` has passed since the last pass (time-based segments)."""
        if self.last_pass is None or at - self.last_pass >= every:
            return True
        window = timedelta(minutes=get_settings().cart_abandon_minutes)
        with self.factory() as session:
            return bool(session.scalar(_WORK_DUE, {"at": at, "left_before": at - window}))


#: Simulation.pass_due's question, built once: an enrollment due by :at, or a cart left
#: alone since :left_before (the abandon window) that no order followed yet.
_WORK_DUE = select(
    or_(
        exists().where(
            Enrollment.state.in_(("active", "waiting")), Enrollment.next_run_at <= bindparam("at")
        ),
        exists().where(
            Cart.abandoned_at.is_(None),
            Cart.converted_at.is_(None),
            Cart.contact_id.is_not(None),
            Cart.updated_at <= bindparam("left_before"),
        ),
    )
)


#: The demo's own questions, asked a few thousand times a run: built (and cache-keyed) once.
_UNPROCESSED = (
    select(Event.id)
    .where(Event.processed_at.is_(None), Event.dead_at.is_(None))
    .order_by(Event.id)
)
_SENDABLE = (
    select(Message.id)
    .where(
        Message.status.in_(("queued", "deferred")),
        or_(Message.not_before.is_(None), Message.not_before <= bindparam("at")),
    )
    .order_by(Message.id)
    .limit(DELIVER_BATCH)
)


def _payloads(planned: list[Planned]) -> list[dict[str, Any]]:
    return [p.payload for p in planned]


def run_demo(options: DemoOptions, progress: Progress | None = None) -> dict[str, Any]:
    """Run the whole simulation and return the summary (see summarize)."""
    say = progress or (lambda _msg: None)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="mactl-demo-"))
    database_url = options.database_url or f"sqlite:///{workdir / 'demo.db'}"
    outbox = options.outbox_file or str(workdir / "outbox.jsonl")
    Path(outbox).parent.mkdir(parents=True, exist_ok=True)
    Path(outbox).write_text("", encoding="utf-8")
    fake = clock.FrozenClock(options.start)
    previous = clock.install(fake)
    try:
        with demo_environment(database_url, outbox):
            summary = _simulate(options, fake, say)
    finally:
        clock.install(previous)
    summary["database_url"] = database_url
    summary["outbox_file"] = outbox
    summary["elapsed_seconds"] = round(time.monotonic() - started, 1)
    return summary


def _simulate(options: DemoOptions, fake: clock.FrozenClock, say: Progress) -> dict[str, Any]:
    from automation.apply import apply_paths
    from automation.core.db import session_factory
    from automation.core.migrate import upgrade
    from automation.runtime.broker import configure_broker

    settings = get_settings()
    upgrade(settings.database_url)
    configure_broker(settings)
    _load_handlers()
    factory = session_factory(settings)
    sim = Simulation(factory, fake, options.seed)
    _use_sink(sim)

    rng = random.Random(options.seed)
    people: list[Person] = make_people(rng, options.contacts)
    story = Story(rng, options.start, options.days)
    story.build(people)

    say(f"importing order history: {len(story.history)} events")
    for start in range(0, len(story.history), 500):
        sim.ingest(_payloads(story.history[start : start + 500]))

    say(f"applying playbooks from {options.playbooks}")
    with factory() as session:
        apply_paths(session, [options.playbooks], at=fake.now())
    sim.drain()

    say(f"simulating {options.days} days: {len(story.events)} shop events")
    hour = options.start
    end = options.start + timedelta(days=options.days)
    queue = list(story.events)
    while hour < end:
        # One batch per simulated hour, as the production workers take them: the opens
        # and clicks of the hour first (at their own times), then the hour's shop events
        # stored and processed together as of the last of them, then one delivery (by the
        # scheduler pass's drain when a pass is due) at the end of the hour.
        following = hour + timedelta(hours=1)
        count = next((i for i, item in enumerate(queue) if item.at >= following), len(queue))
        batch, queue = queue[:count], queue[count:]
        sim.engage_until(following)
        if batch:
            fake.set(max(batch[-1].at, fake.now()))
            sim.ingest(_payloads(batch), drain=False)
        fake.set(following)
        sim.drain(deliver=False)
        if sim.pass_due(following, SEGMENT_REFRESH):
            sim.run_pass(following)
        else:
            sim.drain(settled=True)  # the drain above left nothing unprocessed
        hour = following
        if (hour - options.start) % timedelta(days=7) == timedelta(0):
            say(f"  day {(hour - options.start).days}")
    sim.run_pass(end)
    with factory() as session:
        return summarize(session, options, fake.now())


def summarize(session: Session, options: DemoOptions, at: datetime) -> dict[str, Any]:
    """Per sequence: enrolled, running, exits by reason, conversions, messages per channel."""
    sequences: dict[str, Any] = {}
    for sequence in session.scalars(select(Sequence).order_by(Sequence.key)):
        states = dict(
            session.execute(
                select(Enrollment.state, func.count())
                .where(Enrollment.sequence_id == sequence.id)
                .group_by(Enrollment.state)
            ).all()
        )
        exits = dict(
            session.execute(
                select(Enrollment.exit_reason, func.count())
                .where(Enrollment.sequence_id == sequence.id, Enrollment.exit_reason.is_not(None))
                .group_by(Enrollment.exit_reason)
            ).all()
        )
        messages: dict[str, dict[str, int]] = {}
        for channel, status, count in session.execute(
            select(Message.channel, Message.status, func.count())
            .join(Enrollment, Enrollment.id == Message.enrollment_id)
            .where(Enrollment.sequence_id == sequence.id)
            .group_by(Message.channel, Message.status)
        ):
            messages.setdefault(channel, {})[status] = int(count)
        sent = sum(n for by in messages.values() for s, n in by.items() if s in SENT_STATUSES)
        sequences[sequence.key] = {
            "enrolled": int(sum(states.values())),
            "running": int(states.get("active", 0) + states.get("waiting", 0)),
            "done": int(states.get("done", 0)),
            "exits": {str(k): int(v) for k, v in sorted(exits.items())},
            "conversions": int(exits.get("converted", 0)),
            "sent": sent,
            "messages": messages,
        }
    channels: dict[str, dict[str, int]] = {}
    for channel, status, count in session.execute(
        select(Message.channel, Message.status, func.count()).group_by(
            Message.channel, Message.status
        )
    ):
        channels.setdefault(channel, {})[status] = int(count)
    events = dict(
        session.execute(select(Event.type, func.count()).group_by(Event.type)).all()
    )
    return {
        "seed": options.seed,
        "start": options.start,
        "end": at,
        "days": options.days,
        "contacts": int(session.scalar(select(func.count()).select_from(Contact)) or 0),
        "orders": int(session.scalar(select(func.count()).select_from(Order)) or 0),
        "carts_abandoned": int(
            session.scalar(
                select(func.count()).select_from(Cart).where(Cart.abandoned_at.is_not(None))
            )
            or 0
        ),
        "events": {str(k): int(v) for k, v in sorted(events.items())},
        "sequences": sequences,
        "channels": channels,
        "report": build_report(session, Cohort()),
    }
