"""The process's event loop for provider calls: one daemon thread, started on first use.

Adapters with an ``async_sender`` (channels.base.Channel) send on it, many calls in
flight without a thread each; :func:`submit` hands a coroutine to it from a worker
thread and returns a ``concurrent.futures.Future``. A forked child starts its own.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Coroutine
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")

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


def submit(coro: Coroutine[Any, Any, T]) -> Future[T]:
    """Run ``coro`` on the send loop; its result (or exception) arrives in the Future."""
    return asyncio.run_coroutine_threadsafe(coro, running_loop())
