"""The one YAML loader: line numbers, and hostile documents refused with one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from automation.core.errors import DefinitionError
from automation.dsl.yamlload import MAX_BYTES, LineDict, YamlError, load_yaml_file, load_yaml_text


def _refusal(text: str) -> str:
    with pytest.raises(YamlError) as info:
        load_yaml_text(text, "bomb.yaml")
    message = str(info.value)
    assert message.startswith("bomb.yaml")
    assert "\n" not in message
    assert isinstance(info.value, DefinitionError)
    return message


def test_lines_are_kept() -> None:
    data = load_yaml_text("a: 1\nb:\n  c: [1, 2]\n", "x.yaml")
    assert isinstance(data, LineDict)
    assert data.line_of("b") == 2
    assert data["b"].line_of("c") == 3


def test_billion_laughs_is_refused() -> None:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, 9):
        refs = ", ".join([f"*a{level - 1}"] * 9)
        lines.append(f"a{level}: &a{level} [{refs}]")
    assert "alias bomb" in _refusal("\n".join(lines) + "\n")


def test_too_many_aliases_are_refused() -> None:
    text = "base: &b 1\nitems:\n" + "".join("  - *b\n" for _ in range(101))
    message = _refusal(text)
    assert "more than 100 aliases" in message
    assert message.startswith("bomb.yaml:")


def test_a_few_aliases_and_merge_keys_still_work() -> None:
    text = "base: &b {channel: email}\nx:\n  <<: *b\n  template: a/b\ny: *b\n"
    data = load_yaml_text(text, "ok.yaml")
    assert data["x"] == {"channel": "email", "template": "a/b"}
    assert data["y"] == {"channel": "email"}


def test_documents_over_one_mebibyte_are_refused() -> None:
    message = _refusal("a: '" + "x" * MAX_BYTES + "'\n")
    assert "larger than 1024 KiB" in message


def test_deep_nesting_is_refused_without_a_recursion_error() -> None:
    block = "rule:\n" + "".join(" " * (i + 1) + "not:\n" for i in range(300)) + " " * 301 + "{}\n"
    assert "nested more than 100 levels" in _refusal(block)
    flow = "rule: " + "{not: " * 2000 + "{}" + "}" * 2000 + "\n"
    assert "nested more than 100 levels" in _refusal(flow)


def test_duplicate_keys_are_refused() -> None:
    message = _refusal("a: 1\nb: 2\na: 3\n")
    assert "bomb.yaml:3" in message and "duplicate key 'a'" in message


def test_big_files_are_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"a: '" + "ư".encode() * (MAX_BYTES // 2) + b"'\n")
    with pytest.raises(YamlError) as info:
        load_yaml_file(big)
    assert str(info.value).startswith(f"{big}: file is larger than 1024 KiB")
