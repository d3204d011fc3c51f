"""Provider calls of one channel group: paced, concurrent, outcomes as they return.

:func:`send_group` starts at most DELIVERY_CONCURRENCY calls at a time from the worker
thread and yields their outcomes as they come back. An adapter with an ``async_sender``
(channels.base.Channel) sends on the process's event loop (automation.delivery.eventloop):
calls are started there in bunches (one wake-up of the loop per bunch) and outcomes come
back through a queue, with no thread per call. Other adapters send from a shared
thread pool.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

from automation.core.config import Settings
from automation.delivery import eventloop
from automation.delivery.ratelimit import limiter_for
from channels.base import Channel, OutboundMessage, SendResult
from channels.errors import ChannelError
from channels.errors import TransientError as ChannelTransientError

log = logging.getLogger(__name__)
#: Outcomes are committed in groups about this often while calls return: the at-most-once
#: window is the calls in flight plus outcomes at most about twice this old.
GATHER_SECONDS = 0.005
Outcome = SendResult | ChannelError
#: The outcome of a call cut short (its task cancelled): it may have been delivered.
INTERRUPTED = ChannelTransientError("provider call interrupted")
AsyncSend = Callable[[OutboundMessage], Awaitable[SendResult]]


def send_group(
    adapter: Channel,
    provider: str,
    outbound: list[OutboundMessage],
    settings: Settings,
    stop: Callable[[], bool],
) -> Iterator[list[tuple[int, Outcome]]]:
    """Send a channel's rows, yielding [(index, outcome), ...] as calls return.

    A batching adapter sends them in one session. Other providers get one call per
    message with at most DELIVERY_CONCURRENCY in flight, new calls starting as calls
    return; after outcomes are yielded, something more (possibly []) follows within
    GATHER_SECONDS, so the caller can commit them on time. Slots are reserved with one
    limiter call and call i starts at its own slot (first + i x spacing), so concurrent
    calls keep the provider's pace. Once ``stop()`` is true no further call starts:
    rows never started are not yielded.
    """
    limiter = limiter_for(provider, settings)
    limiter.acquire(len(outbound))
    if adapter.batches:
        yield list(enumerate(adapter.send_batch(outbound)))
        return
    first = time.monotonic()
    returned: queue.SimpleQueue[tuple[int, Outcome]] = queue.SimpleQueue()
    asend = adapter.async_sender()

    def due(index: int) -> float:
        return first + index * limiter.spacing - time.monotonic()

    def paced(index: int, msg: OutboundMessage) -> None:
        outcome: Outcome = INTERRUPTED
        try:
            if (delay := due(index)) > 0:
                time.sleep(delay)
            outcome = _send_one(adapter, provider, msg)
        finally:  # every started call reports, or the worker would wait for it forever
            returned.put((index, outcome))

    async def apaced(index: int, msg: OutboundMessage, send: AsyncSend) -> None:
        outcome: Outcome = INTERRUPTED
        try:
            if (delay := due(index)) > 0:
                await asyncio.sleep(delay)
            outcome = await _asend_one(send, provider, msg)
        finally:
            returned.put((index, outcome))

    def start(bunch: list[tuple[int, OutboundMessage]]) -> None:
        if asend is not None:  # on the event loop: no thread per call
            eventloop.spawn([apaced(index, msg, asend) for index, msg in bunch])
        else:
            for index, msg in bunch:
                _pool().submit(paced, index, msg)

    waiting = list(enumerate(outbound))[::-1]
    in_flight = 0
    fresh = False  # outcomes yielded that the caller may not have committed yet
    while True:
        bunch: list[tuple[int, OutboundMessage]] = []
        while waiting and in_flight + len(bunch) < settings.delivery_concurrency and not stop():
            bunch.append(waiting.pop())
        if bunch:
            start(bunch)
            in_flight += len(bunch)
        if not in_flight:
            return
        try:  # idle while only slow calls remain
            done = [returned.get(timeout=GATHER_SECONDS if fresh else None)]
        except queue.Empty:
            fresh = False
            yield []
            continue
        while True:
            try:
                done.append(returned.get_nowait())
            except queue.Empty:
                break
        in_flight -= len(done)
        fresh = True
        yield sorted(done, key=lambda pair: pair[0])


def _send_one(adapter: Channel, provider: str, msg: OutboundMessage) -> Outcome:
    try:
        return adapter.send(msg)
    except Exception as exc:  # noqa: BLE001 - an adapter bug must not strand the row
        return _failure(exc, provider, msg)


async def _asend_one(send: AsyncSend, provider: str, msg: OutboundMessage) -> Outcome:
    try:
        return await send(msg)
    except Exception as exc:  # noqa: BLE001 - an adapter bug must not strand the row
        return _failure(exc, provider, msg)


def _failure(exc: Exception, provider: str, msg: OutboundMessage) -> ChannelError:
    """A call's exception as its outcome: a ChannelError as is, anything else (an adapter
    bug) logged and made transient."""
    if isinstance(exc, ChannelError):
        return exc
    log.exception("adapter %s crashed on message %s", provider, msg.id)
    return ChannelTransientError(f"adapter error: {exc!r}")


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _pool() -> ThreadPoolExecutor:
    """Threads for concurrent provider calls of adapters without an ``async_sender``."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=32, thread_name_prefix="send")
        return _executor
