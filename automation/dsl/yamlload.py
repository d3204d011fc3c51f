"""The one YAML loader of the definition language: line numbers kept, hostile input refused.

Segments, sequences and ``mactl apply`` read YAML through here, so errors can say
file:line. Limits (issue 11): a document is at most 1 MiB, uses at most 100 aliases,
expands to at most 100,000 nodes and nests at most 100 levels deep.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path
from typing import Any, cast

import yaml

from automation.core.errors import DefinitionError

MAX_BYTES = 1024 * 1024
MAX_ALIASES = 100
MAX_NODES = 100_000
MAX_DEPTH = 100


class LineDict(dict[str, Any]):
    """A mapping from YAML that knows its line and the line of each key."""

    line: int = 0
    key_lines: dict[str, int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.key_lines = {}

    def line_of(self, key: str) -> int:
        """The line of ``key`` if known, else the mapping's own line."""
        return self.key_lines.get(key, self.line)


class LineList(list[Any]):
    """A sequence from YAML that knows its line and the line of each item."""

    line: int = 0
    item_lines: list[int]

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.item_lines = []

    def line_of(self, index: int) -> int:
        """The line of item ``index`` if known, else the list's own line."""
        return self.item_lines[index] if index < len(self.item_lines) else self.line


class LocatedError(DefinitionError):
    """A definition error at ``file:line``, told as ``file:line: problem. Fix: fix``."""

    def __init__(self, file: str, line: int, message: str, fix: str = "") -> None:
        self.file, self.line = file, line
        super().__init__(message, where=f"{file}:{line}" if line else file, fix=fix)

    def render(self) -> str:
        """``file:line: problem. Fix: fix`` (the fix left out when there is none)."""
        text = f"{self.where}: {self.message}" if self.where else self.message
        return f"{text}. Fix: {self.fix}" if self.fix else text


class YamlError(LocatedError):
    """YAML that cannot be read (or is too big, too deep, or an alias bomb)."""


class _Limit(yaml.MarkedYAMLError):
    """A limit crossed while composing; turned into a YamlError with its line."""


class _LineLoader(yaml.SafeLoader):
    """SafeLoader building LineDict / LineList with line numbers (1-based), within limits."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.aliases = 0
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Count alias uses and nesting depth while composing the node tree."""
        event = self.peek_event()  # type: ignore[no-untyped-call]
        mark = cast("yaml.Mark", event.start_mark)
        if isinstance(event, yaml.AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise _Limit(problem=f"more than {MAX_ALIASES} aliases (*name)",
                             problem_mark=mark)  # fmt: skip
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise _Limit(problem=f"nested more than {MAX_DEPTH} levels deep",
                             problem_mark=mark)  # fmt: skip
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """How many nodes the tree has once every alias is expanded (memoised: linear time)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(child, sizes) for child in node.value)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            size += _expanded_size(key, sizes) + _expanded_size(value, sizes)
    sizes[id(node)] = min(size, MAX_NODES + 1)
    return sizes[id(node)]


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> LineDict:
    loader.flatten_mapping(node)
    result = LineDict()
    result.line = node.start_mark.line + 1
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        line = key_node.start_mark.line + 1
        if not isinstance(key, str):
            key = str(key).lower() if isinstance(key, bool) else str(key)
        if key in result:
            raise yaml.MarkedYAMLError(
                problem=f"duplicate key {key!r} (first on line {result.key_lines[key]})",
                problem_mark=key_node.start_mark,
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_lines[key] = line
    return result


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> LineList:
    result = LineList()
    result.line = node.start_mark.line + 1
    for child in node.value:
        result.append(loader.construct_object(child, deep=True))
        result.item_lines.append(child.start_mark.line + 1)
    return result


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _too_big(file: str) -> YamlError:
    return YamlError(
        file, 0, f"file is larger than {MAX_BYTES // 1024} KiB",
        "split the definitions into several files",
    )  # fmt: skip


def load_yaml_text(text: str, file: str = "<string>") -> Any:
    """Parse one YAML document into LineDict/LineList values, or raise YamlError with the line."""
    if len(text) > MAX_BYTES or len(text.encode("utf-8")) > MAX_BYTES:
        raise _too_big(file)
    loader = _LineLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_NODES:
            raise YamlError(file, node.start_mark.line + 1,
                            f"the document expands to more than {MAX_NODES} values (alias bomb?)",
                            "write the values out instead of nesting aliases")  # fmt: skip
        return loader.construct_document(node)
    except _Limit as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
        raise YamlError(file, line, f"refused: {exc.problem}",
                        "write the values out plainly, without deep nesting or many aliases"
                        ) from None  # fmt: skip
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlError(
            file, line, f"invalid YAML: {problem}", "check indentation and quoting"
        ) from None
    except yaml.YAMLError as exc:
        raise YamlError(file, 1, f"invalid YAML: {exc}", "check the file is YAML") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | Path) -> Any:
    """Read and parse a YAML file with line numbers (UTF-8)."""
    path = Path(path)
    name = str(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise _too_big(name)
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlError(name, 1, f"cannot read file: {exc.strerror}", "check the path") from None
    except UnicodeDecodeError:
        raise YamlError(name, 1, "file is not UTF-8", "save the file as UTF-8") from None
    return load_yaml_text(text, name)


def plain(value: Any) -> Any:
    """A JSON-ready copy: LineDict/LineList -> dict/list, dates -> ISO strings."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def canonical_json(value: Any) -> str:
    """Stable JSON text of ``value`` (sorted keys) for hashing."""
    return json.dumps(plain(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
