"""Human durations in YAML: "90m", "1h", "23h", "7d", "2w", "1h30m" -> timedelta."""

from __future__ import annotations

import re
from datetime import timedelta

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


class DurationError(ValueError):
    """A duration that cannot be read; ``problem`` and ``fix`` are also kept apart."""

    def __init__(self, problem: str, fix: str = FIX) -> None:
        self.problem, self.fix = problem, fix
        super().__init__(f"{problem}: {fix}")


def parse_duration(value: object) -> timedelta:
    """Parse "1h", "90m", "7d", "2w", "1h30m" into a positive timedelta or raise DurationError."""
    if isinstance(value, bool) or not isinstance(value, str):
        shown = repr(value)
        hint = f' (did you mean "{value}m" or "{value}h"?)' if isinstance(value, int) else ""
        raise DurationError(f"duration {shown} has no unit{hint}")
    text = value.strip().lower()
    if not _WHOLE.match(text):
        raise DurationError(f"cannot read duration {value!r}")
    total = timedelta()
    for amount, unit in _PART.findall(text):
        total += int(amount) * UNITS[unit]
    if total <= timedelta():
        raise DurationError(f"duration {value!r} must be longer than zero")
    return total


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
