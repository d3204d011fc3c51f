"""Hard limits on rendering, so a hostile or careless template cannot hang or flood a process.

One :class:`Budget` covers one rendering (one channel section of one template):

* ``range()`` returns at most MAX_RANGE numbers;
* all ``{% for %}`` loops together run at most MAX_ITERATIONS times;
* rendering stops after MAX_SECONDS (checked on every loop step, call and operator);
* any one string, list or output is at most MAX_OUTPUT characters (``"a" * 10**7``,
  ``~`` concatenation, ``+``, ``replace`` and format widths are checked before they
  allocate); powers like ``2 ** 100000`` are refused above MAX_POWER_BITS;
* all ``{{ ... }}`` values together, macro and block buffers included, are at most
  MAX_EMITTED characters.

Exceeding a limit raises :class:`RenderLimit`; the renderer turns it into a TemplateProblem.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

MAX_RANGE = 10_000
MAX_ITERATIONS = 10_000
MAX_SECONDS = 2.0
MAX_OUTPUT = 256 * 1024
MAX_POWER_BITS = 4096
MAX_EMITTED = 4 * MAX_OUTPUT
_PERCENT_WIDTH = re.compile(r"%[-+ #0]*(\d+)")
_BRACE_WIDTH = re.compile(r"\{[^{}:]*:[^{}\d]*(\d+)[^{}]*\}")
SMALLER_TEXT = f"produce less text (at most {MAX_OUTPUT // 1024} KiB per value and output)"


class RenderLimit(Exception):
    """A template went over one of the rendering limits; ``fix`` says what to change."""

    def __init__(self, message: str, fix: str = SMALLER_TEXT) -> None:
        super().__init__(message)
        self.fix = fix


@dataclass
class Budget:
    """What one rendering may still spend."""

    deadline: float = field(default_factory=lambda: time.monotonic() + MAX_SECONDS)
    iterations: int = 0
    emitted: int = 0

    def tick(self) -> None:
        """Refuse once the time is up."""
        if time.monotonic() > self.deadline:
            raise RenderLimit(
                f"rendering took longer than {MAX_SECONDS:g} s",
                "simplify the template (no macro calling itself, fewer nested loops)",
            )

    def step(self) -> None:
        """Count one loop iteration."""
        self.iterations += 1
        if self.iterations > MAX_ITERATIONS:
            raise RenderLimit(
                f"loops ran more than {MAX_ITERATIONS:,} times",
                f"loop over fewer items ({MAX_ITERATIONS:,} loop steps in all per message)",
            )
        self.tick()


_CURRENT: ContextVar[Budget | None] = ContextVar("render_budget", default=None)


@contextmanager
def budget() -> Iterator[Budget]:
    """The budget of the rendering in progress, or a fresh one for a new rendering."""
    current = _CURRENT.get()
    if current is not None:
        yield current
        return
    fresh = Budget()
    token = _CURRENT.set(fresh)
    try:
        yield fresh
    finally:
        _CURRENT.reset(token)


@contextmanager
def trial() -> Iterator[Budget]:
    """A copy of the running budget: what the block spends counts only if it succeeds."""
    base = current()
    copy = replace(base)
    token = _CURRENT.set(copy)
    try:
        yield copy
    finally:
        _CURRENT.reset(token)
    vars(base).update(vars(copy))


def current() -> Budget:
    """The running budget (a fresh one outside :func:`budget`, e.g. in a bare render)."""
    return _CURRENT.get() or Budget()


def emit(value: Any) -> Any:
    """``value`` unchanged; counts the characters every ``{{ ... }}`` writes (Jinja finalize)."""
    if isinstance(value, str):
        spend = current()
        spend.emitted += len(value)
        if spend.emitted > MAX_EMITTED:
            raise RenderLimit(f"template wrote over {MAX_EMITTED:,} characters")
    return value


def check_size(value: Any, what: str = "a value") -> Any:
    """``value`` unchanged, unless it is a string or sequence over MAX_OUTPUT."""
    if isinstance(value, str | bytes | list | tuple) and len(value) > MAX_OUTPUT:
        raise RenderLimit(f"{what} of {len(value):,} characters/items > {MAX_OUTPUT:,}")
    return value


def safe_range(*args: int) -> range:
    """``range`` limited to MAX_RANGE numbers."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise RenderLimit(
            f"range() of {len(numbers):,} numbers > {MAX_RANGE:,}",
            f"use a range of at most {MAX_RANGE:,} numbers",
        )
    return numbers


def guarded(items: Iterable[Any]) -> Iterator[Any]:
    """Iterate ``items`` while counting each step against the budget."""
    spend = current()
    for item in items:
        spend.step()
        yield item


def check_replace(text: Any, old: Any, new: Any) -> None:
    """Refuse a ``replace`` whose result would be over MAX_OUTPUT, before computing it."""
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str) and old:
        size = len(text) + text.count(old) * (len(new) - len(old))
        if size > MAX_OUTPUT:
            raise RenderLimit(f"replace() giving {size:,} characters > {MAX_OUTPUT:,}")


def check_width(name: str, args: Iterable[Any]) -> None:
    """Refuse a width argument (``center(10**9)``) over MAX_OUTPUT."""
    for arg in args:
        if isinstance(arg, int) and arg > MAX_OUTPUT:
            raise RenderLimit(f"{name}({arg}) is over {MAX_OUTPUT:,}")


def check_format(fmt: Any) -> None:
    """Refuse a format string with a width over MAX_OUTPUT (``%999999999d``, ``{:>99999999}``)."""
    if isinstance(fmt, str):
        widths = [*_PERCENT_WIDTH.findall(fmt), *_BRACE_WIDTH.findall(fmt)]
        if any(int(width) > MAX_OUTPUT for width in widths):
            raise RenderLimit(f"a format width over {MAX_OUTPUT:,}")


def _length(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``*``, ``+``, ``**`` and ``%`` whose result would be over the limits, beforehand."""
    current().tick()
    if operator == "%":
        check_format(left)
    elif operator == "*":
        for seq, times in ((left, right), (right, left)):
            size = _length(seq)
            if size is not None and isinstance(times, int) and size * times > MAX_OUTPUT:
                raise RenderLimit(f"repetition of {size * times:,} characters > {MAX_OUTPUT:,}")
    elif operator == "+":
        sizes = (_length(left), _length(right))
        if None not in sizes and sum(s or 0 for s in sizes) > MAX_OUTPUT:
            raise RenderLimit(f"concatenation > {MAX_OUTPUT:,} characters")
    elif operator == "**" and isinstance(left, int) and isinstance(right, int):
        bits = right * math.log2(abs(left)) if abs(left) > 1 else 0
        if bits > MAX_POWER_BITS:
            raise RenderLimit(
                f"{left} ** {right} is over {MAX_POWER_BITS} bits", "use smaller numbers"
            )
