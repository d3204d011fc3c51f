"""The one property filter of the definition language: ``{property: total, gte: 1000000}``.

Segments (``performed: ... where:``) and sequences (triggers, ``wait_until``, exits)
share this type, its operator set and its parser. Sequences match in Python with
``PropertyFilter.matches``; segments compile the same filter to SQL and evaluate it
in Python with their JSON comparison (``compile.json_compare`` / ``evaluate.json_compare``).
"""

from __future__ import annotations

import builtins
import difflib
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from automation.core.errors import DefinitionError

OPERATORS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists")
OPERATOR_ALIASES = {"equals": "eq", "not_equals": "ne"}
ORDER_OPS = ("gt", "gte", "lt", "lte")
LIST_OPS = ("in", "not_in")
NAME_PART = re.compile(r"^[^\W\d][\w\-]*$")
EXAMPLE = "write {property: total, gte: 1000000}"


class FilterError(DefinitionError):
    """A where filter that cannot be used; ``where`` is file:line."""


@dataclass(frozen=True)
class Compare:
    """One operator applied to one value: ``gte: 2000000``, ``within: 90d``, ``exists: true``."""

    op: str
    value: Any


@dataclass(frozen=True)
class PropertyFilter:
    """One condition on an event property (a dotted path into the properties)."""

    property: str
    op: str
    value: Any

    @builtins.property
    def path(self) -> tuple[str, ...]:
        """The property name split on dots."""
        return tuple(self.property.split("."))

    @builtins.property
    def compare(self) -> Compare:
        """The operator and value as a Compare."""
        return Compare(self.op, self.value)

    def matches(self, properties: dict[str, Any]) -> bool:
        """True when the event properties satisfy this filter."""
        actual = dig(properties, self.property)
        if self.op == "exists":
            return (actual is not None) == bool(self.value)
        if actual is None:
            return self.op in ("ne", "not_in")
        if self.op == "eq":
            return same(actual, self.value)
        if self.op == "ne":
            return not same(actual, self.value)
        if self.op in LIST_OPS:
            found = any(same(actual, v) for v in self.value)
            return found if self.op == "in" else not found
        if self.op == "contains":
            if isinstance(actual, str):
                return str(self.value) in actual
            if isinstance(actual, list):
                return any(same(item, self.value) for item in actual)
            return False
        left, right = as_number(actual), as_number(self.value)
        if left is None or right is None:
            return False
        return {"gt": left > right, "gte": left >= right, "lt": left < right,
                "lte": left <= right}[self.op]  # fmt: skip


def filters_match(filters: Sequence[PropertyFilter], properties: dict[str, Any]) -> bool:
    """True when every filter matches (an empty list matches everything)."""
    return all(f.matches(properties) for f in filters)


def parse_filter(
    item: Any, where: str, key_where: Callable[[str], str] | None = None
) -> PropertyFilter:
    """Validate one ``{property: NAME, OPERATOR: VALUE}`` mapping; FilterError names where.

    ``key_where(key)`` gives the file:line of a key when known (defaults to ``where``).
    """
    at = key_where or (lambda _key: where)
    if not isinstance(item, dict) or not isinstance(item.get("property"), str):
        raise FilterError("each where filter is {property: NAME, OPERATOR: VALUE}",
                          where=where, fix=EXAMPLE)  # fmt: skip
    name = item["property"]
    if not name or not all(NAME_PART.match(part) for part in name.split(".")):
        raise FilterError(f"bad property name {name!r}", where=at("property"),
                          fix="use letters, digits, _ or - separated by dots")  # fmt: skip
    ops = [k for k in item if k != "property"]
    if len(ops) != 1:
        raise FilterError(f"filter on {name!r} needs exactly one operator, got {len(ops)}",
                          where=where, fix=f"use one of {', '.join(OPERATORS)}")  # fmt: skip
    op = OPERATOR_ALIASES.get(str(ops[0]), str(ops[0]))
    if op not in OPERATORS:
        close = difflib.get_close_matches(op, OPERATORS, n=1)
        hint = f'did you mean "{close[0]}"? ' if close else ""
        raise FilterError(f"unknown operator {ops[0]!r}", where=at(ops[0]),
                          fix=f"{hint}use one of {', '.join(OPERATORS)}")  # fmt: skip
    value = item[ops[0]]
    problem = _operand_problem(op, value)
    if problem:
        raise FilterError(f"{op} needs {problem}, got {value!r}", where=at(ops[0]),
                          fix=f"write {op}: {_EXAMPLES[op]}")  # fmt: skip
    operand = tuple(value) if op in LIST_OPS else value
    return PropertyFilter(name, op, operand)


_EXAMPLES = {"exists": "true", "in": "[a, b]", "not_in": "[a, b]", "contains": "text",
             "eq": "value", "ne": "value", **{op: "1000000" for op in ORDER_OPS}}  # fmt: skip


def _operand_problem(op: str, value: Any) -> str:
    if op == "exists":
        return "" if isinstance(value, bool) else "true or false"
    if op in ORDER_OPS:
        return "" if _is_number(value) else "a number"
    if op in LIST_OPS:
        good = isinstance(value, list) and value and all(_is_scalar(v) for v in value)
        return "" if good else "a list of texts, numbers or true/false"
    if op == "contains":
        return "" if isinstance(value, str) or _is_number(value) else "a text or a number"
    return "" if _is_scalar(value) else "a text, a number or true/false"


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, str | bool) or _is_number(value)


def dig(properties: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (list items by index), or None."""
    value: Any = properties
    for part in path.split("."):
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def as_number(value: Any) -> float | None:
    """A number, or a numeric text such as "1,000,000", as float; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", ""))
        except ValueError:
            return None
    return None


def same(actual: Any, expected: Any) -> bool:
    """Equal as numbers when both read as numbers, else equal as values or texts."""
    left, right = as_number(actual), as_number(expected)
    if left is not None and right is not None:
        return left == right
    return bool(actual == expected) or str(actual) == str(expected)
