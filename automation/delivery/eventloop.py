"""The process's event loop for provider calls: one daemon thread, started on first use.

Adapters with an ``async_sender`` (channels.base.Channel) send on it, many calls in
flight without a thread each: :func:`spawn` starts coroutines on it from a worker
thread (they report their outcomes themselves). A forked child starts its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from typing import Any

_loop: asyncio.AbstractEventLoop | None = None
_pid = 0
_lock = threading.Lock()


def running_loop() -> asyncio.AbstractEventLoop:
    """This process's send loop, started (in a daemon thread named ``send-loop``) if needed."""
    global _loop, _pid
    with _lock:
        if _loop is None or _pid != os.getpid():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="send-loop", daemon=True).start()
            _loop, _pid = loop, os.getpid()
        return _loop


def spawn(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Start ``coros`` as tasks on the send loop (one wake-up of the loop for all)."""
    loop = running_loop()

    def start() -> None:
        for coro in coros:
            _running.add(task := loop.create_task(coro))
            task.add_done_callback(_running.discard)

    loop.call_soon_threadsafe(start)


_running: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

