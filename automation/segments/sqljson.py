"""JSON and text tests in SQL, written once per backend (PostgreSQL JSONB, SQLite JSON1).

``json_compare`` compares a JSON value at a path by the literal's type, never NULL, the
way automation.segments.evaluate compares it in Python; ``PerDialect`` holds one
expression per dialect and is cached like any other statement element.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Float,
    String,
    Text,
    and_,
    case,
    cast,
    exists,
    false,
    func,
    literal,
    not_,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeEngine

from automation.segments.nodes import Compare


class PerDialect(ColumnElement[Any]):
    """One expression per dialect (postgresql / sqlite), chosen when the statement compiles;
    both are in the cache key, so statements holding one are cached like any other."""

    inherit_cache = True
    _traverse_internals = [
        ("type", InternalTraversal.dp_type),
        ("postgresql", InternalTraversal.dp_clauseelement),
        ("sqlite", InternalTraversal.dp_clauseelement),
    ]

    def __init__(self, type_: TypeEngine[Any], postgresql: Any, sqlite: Any) -> None:
        self.type = type_
        self.postgresql = postgresql
        self.sqlite = sqlite


@compiles(PerDialect)
def _compile_per_dialect(element: PerDialect, compiler: SQLCompiler, **kw: Any) -> str:
    chosen = element.sqlite if compiler.dialect.name == "sqlite" else element.postgresql
    return "(" + str(compiler.process(chosen, **kw)) + ")"


# --- JSON helpers (column + path) ---------------------------------------------------------


def _sqlite_path(path: tuple[str, ...]) -> str:
    # keys are validated identifiers (no quotes), so quoting each one is safe
    return "$" + "".join(f'."{part}"' for part in path)


def _pg_node(col: Any, path: tuple[str, ...]) -> Any:
    doc = type_coerce(col, JSONB)
    if not path:
        return doc
    return doc[path[0]] if len(path) == 1 else doc[path]


def _pg_text(col: Any, path: tuple[str, ...]) -> Any:
    if not path:
        return cast(type_coerce(col, JSONB), Text)
    return _pg_node(col, path).astext


def json_kind(col: Any, path: tuple[str, ...]) -> ColumnElement[str]:
    """string | number | true | false | null | array | object | missing (never NULL)."""
    pg_type = func.jsonb_typeof(_pg_node(col, path))
    pg = case((pg_type == "boolean", _pg_text(col, path)), else_=pg_type)
    lite_type = func.json_type(col, _sqlite_path(path))
    lite = case(
        (lite_type.in_(("integer", "real")), literal("number")),
        (lite_type == "text", literal("string")),
        else_=lite_type,
    )
    return func.coalesce(PerDialect(String(), pg, lite), literal("missing"))


def json_text(col: Any, path: tuple[str, ...]) -> ColumnElement[str]:
    """The value as text (meaningful when its kind is string)."""
    lite = func.json_extract(col, _sqlite_path(path))
    return PerDialect(String(), _pg_text(col, path), lite)


def json_is(col: Any, path: tuple[str, ...], kind: str) -> ColumnElement[bool]:
    """The value at path is a JSON string / number (NULL when missing: wrap in coalesce)."""
    pg = func.jsonb_typeof(_pg_node(col, path)) == kind
    lite_kinds = ("integer", "real") if kind == "number" else ("text",)
    lite = func.json_type(col, _sqlite_path(path)).in_(lite_kinds)
    return PerDialect(Boolean(), pg, lite)


def json_number(col: Any, path: tuple[str, ...]) -> ColumnElement[float]:
    """The value as a float when it is a JSON number, else NULL (no cast errors)."""
    pg = cast(_pg_text(col, path), Float)
    lite = func.json_extract(col, _sqlite_path(path))
    value = PerDialect(Float(), pg, lite)
    return case((json_is(col, path, "number"), value), else_=None)


def json_array_has(
    col: Any, path: tuple[str, ...], value: str | int | float
) -> ColumnElement[bool]:
    """The JSON array at path has an element equal to value (same JSON type)."""
    pg = _pg_node(col, path).contains([value])
    each = func.json_each(col, _sqlite_path(path)).table_valued("value", "type")
    types = ("text",) if isinstance(value, str) else ("integer", "real")
    lite = exists(
        select(literal(1)).select_from(each).where(each.c.type.in_(types), each.c.value == value)
    )
    return PerDialect(Boolean(), pg, lite)


def text_contains(text: Any, needle: str) -> ColumnElement[bool]:
    """Case-sensitive substring test, the same on both backends."""
    return PerDialect(Boolean(), func.strpos(text, needle) > 0, func.instr(text, needle) > 0)


def json_compare(col: Any, path: tuple[str, ...], cmp: Compare) -> ColumnElement[bool]:
    """A JSON value compared by the literal's type (text, number, true/false)."""
    kind = json_kind(col, path)
    op, value = cmp.op, cmp.value
    if op == "exists":
        present = kind.not_in(("missing", "null"))
        return present if value else not_(present)
    if op == "ne":
        return not_(json_compare(col, path, Compare("eq", value)))
    if op == "in":
        return or_(*(json_compare(col, path, Compare("eq", v)) for v in value))
    if op == "not_in":
        return not_(json_compare(col, path, Compare("in", value)))
    if op == "contains":
        has = and_(kind == "array", json_array_has(col, path, value))
        if isinstance(value, str):
            return or_(and_(kind == "string", text_contains(json_text(col, path), value)), has)
        return has
    if isinstance(value, bool):  # eq true/false
        return kind == ("true" if value else "false")
    if isinstance(value, str):  # eq text
        matched = and_(json_is(col, path, "string"), json_text(col, path) == value)
        return func.coalesce(matched, false())
    # numbers: NULL (missing or not a number) compares to NULL, coalesced to false. The
    # leading type test changes nothing but lets the planner estimate the filter as it
    # does hand-written SQL (a CASE alone is guessed at half the rows: no parallel plan).
    compared = func.coalesce(ordered(json_number(col, path), op, value), false())
    return and_(json_is(col, path, "number"), compared)


def ordered(column: Any, op: str, value: Any) -> ColumnElement[bool]:
    """``column <op> value`` for an ordering operator (eq, gt, gte, lt, lte)."""
    if op == "eq":
        return column == value  # type: ignore[no-any-return]
    if op == "gt":
        return column > value  # type: ignore[no-any-return]
    if op == "gte":
        return column >= value  # type: ignore[no-any-return]
    if op == "lt":
        return column < value  # type: ignore[no-any-return]
    if op == "lte":
        return column <= value  # type: ignore[no-any-return]
    raise ValueError(f"not an ordering operator: {op}")
