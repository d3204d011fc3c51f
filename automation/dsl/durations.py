"""The one duration grammar: "30s", "90m", "1h", "7d", "2w", "1h30m" -> timedelta.

Segments (``within:``, ``more_than_ago:``) and sequences (``wait:``, ``timeout:``...)
read durations here. A duration is positive and at most 10 years, so adding it to a
date can never overflow at run time.
"""

from __future__ import annotations

import re
from datetime import timedelta

from automation.core.errors import DefinitionError

UNITS: dict[str, timedelta] = {
    "s": timedelta(seconds=1),
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_PART = re.compile(r"(\d+)\s*([smhdw])")
_WHOLE = re.compile(r"^\s*(?:\d+\s*[smhdw]\s*)+$")
FIX = 'write a number and a unit: s, m (minutes), h, d or w, e.g. "90m", "23h", "7d", "2w"'
MAX_DURATION = timedelta(days=3653)  # ten years


class DurationError(DefinitionError):
    """A duration that cannot be read; ``problem`` and ``fix`` are also kept apart."""

    def __init__(self, problem: str, fix: str = FIX) -> None:
        self.problem = problem
        super().__init__(problem, fix=fix)

    def render(self) -> str:
        """``problem: fix`` (a duration error has no place of its own; callers add it)."""
        return f"{self.problem}: {self.fix}"


def parse_duration(value: object) -> timedelta:
    """Parse "1h", "90m", "7d", "2w", "1h30m" into a positive timedelta or raise DurationError."""
    if isinstance(value, bool) or not isinstance(value, str):
        shown = repr(value)
        hint = f' (did you mean "{value}m" or "{value}h"?)' if isinstance(value, int) else ""
        raise DurationError(f"duration {shown} has no unit{hint}")
    text = value.strip().lower()
    if not _WHOLE.match(text):
        raise DurationError(f"cannot read duration {value!r}")
    seconds = sum(
        int(amount) * int(UNITS[unit].total_seconds()) for amount, unit in _PART.findall(text)
    )
    if seconds <= 0:
        raise DurationError(f"duration {value!r} must be longer than zero")
    if seconds > MAX_DURATION.total_seconds():
        raise DurationError(
            f"duration {value!r} is longer than 10 years", 'write at most "520w" or "3650d"'
        )
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """The shortest exact form of a duration ("1d12h", "90m" -> "1h30m")."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    parts: list[str] = []
    for unit in ("w", "d", "h", "m", "s"):
        size = int(UNITS[unit].total_seconds())
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
