"""Step addressing: a cursor string such as "3.then.0" names one step in nested branches.

Tokens alternate between a position in a step list and the label of a branch of the step
at that position ("then", "else", "on_event", "on_timeout", or a split branch name). The
cursor of the next step to run is stored on the enrollment, so it survives restarts and
is also the message ``step_key``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

from automation.core.errors import DefinitionError

S = TypeVar("S")


class CursorError(DefinitionError):
    """A cursor that does not address a step of this definition (corrupt state)."""


def join(tokens: Sequence[str | int]) -> str:
    """Tokens -> "3.then.0"."""
    return ".".join(str(t) for t in tokens)


def first() -> str:
    """The cursor of the first step."""
    return "0"


def following(cursor: str) -> str:
    """The cursor right after ``cursor`` in the same list (may point past its end)."""
    tokens = cursor.split(".")
    tokens[-1] = str(int(tokens[-1]) + 1)
    return join(tokens)


def branch(cursor: str, label: str) -> str:
    """The first step of branch ``label`` of the step at ``cursor``."""
    return f"{cursor}.{label}.0"


def resolve(
    steps: Sequence[S], cursor: str, children: Callable[[S, str], Sequence[S] | None]
) -> tuple[str, S] | None:
    """The normalised cursor and step to run next, or None when the sequence is finished.

    A cursor past the end of a branch continues after the step that owns the branch.
    """
    tokens: list[str] = cursor.split(".")
    while True:
        if len(tokens) % 2 != 1:
            raise CursorError(f"malformed cursor {cursor!r}")
        current: Sequence[S] = steps
        try:
            for i in range(0, len(tokens) - 1, 2):
                idx, label = int(tokens[i]), tokens[i + 1]
                if not 0 <= idx < len(current):
                    raise CursorError(f"cursor {cursor!r} is outside the steps")
                kids = children(current[idx], label)
                if kids is None:
                    raise CursorError(f"cursor {cursor!r}: step has no branch {label!r}")
                current = kids
            last = int(tokens[-1])
        except ValueError as exc:
            if isinstance(exc, CursorError):
                raise
            raise CursorError(f"malformed cursor {cursor!r}") from None
        if 0 <= last < len(current):
            return join(tokens), current[last]
        if len(tokens) == 1:
            return None
        tokens = tokens[:-2]
        tokens[-1] = str(int(tokens[-1]) + 1)


def walk(
    steps: Sequence[Any],
    children: Callable[[Any], Iterable[tuple[str, Sequence[Any]]]],
    prefix: str = "",
) -> list[tuple[str, Any]]:
    """Every (cursor, step) in document order (pre-order), descending into branches."""
    found: list[tuple[str, Any]] = []
    for index, step in enumerate(steps):
        here = f"{prefix}{index}"
        found.append((here, step))
        for label, kids in children(step):
            found.extend(walk(kids, children, f"{here}.{label}."))
    return found
