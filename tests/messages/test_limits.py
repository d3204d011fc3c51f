"""Rendering limits (issue 11, defects 6 and 7): hostile templates give one-line errors, fast."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from admin_cli.main import app
from automation.core.config import Settings, get_settings
from automation.core.errors import DefinitionError
from automation.messages.errors import TemplateProblem
from automation.messages.render import render
from automation.messages.samples import sample_context
from automation.messages.validate import validate_template

runner = CliRunner()
HOSTILE = {
    "nested_range": (
        "{% for i in range(100000) %}{% for j in range(100000) %}a{% endfor %}{% endfor %}",
        "range() of 100,000 numbers",
    ),
    "nested_lists": (
        "{% for a in [0]*9000 %}{% for b in [0]*9000 %}a{% endfor %}{% endfor %}",
        "loops ran more than 10,000 times",
    ),
    "string_repeat": ("{{ 'a' * 10000000 }}", "repetition of 10,000,000 characters"),
    "list_repeat": ("{{ ([1] * 10000000) | length }}", "repetition of 10,000,000"),
    "power": ("{{ 2 ** 100000 }}", "2 ** 100000 is over 4096 bits"),
    "huge_range": ("{{ range(10**9) | list | length }}", "range() of 1,000,000,000 numbers"),
    "recursive_macro": (
        "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
        "recursion too deep",
    ),
    "fan_out_macro": (
        "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}",
        "rendering took longer than 2 s",
    ),
    "doubling": (
        "{% set ns = namespace(s='ab') %}{% for i in range(40) %}"
        "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s | length }}",
        "a joined text of 524,288",
    ),
    "center": ("{{ 'a' | center(1000000000) }}", "center(1000000000) is over 262,144"),
    "replace": (
        "{% set s = 'a' * 200000 %}{{ s.replace('a', s) }}",
        "replace() giving 40,000,000,000 characters",
    ),
    "output": (
        "{% for i in range(5000) %}{{ 'x' * 100 }}{% endfor %}",
        "output over 262,144 characters",
    ),
    "macro_buffer": (
        "{% set s = 'a' * 200000 %}{% macro m() %}{% for i in range(9000) %}{{ s }}"
        "{% endfor %}{% endmacro %}{{ m() | length }}",
        "template wrote over 1,048,576 characters",
    ),
    "division": ("{{ 1 // 0 }}", "ZeroDivisionError"),
    "format_filter": ("{{ '%999999999d' | format(1) }}", "a format width over 262,144"),
    "format_method": ("{{ '{:>999999999}'.format(1) }}", "a format width over 262,144"),
    "percent": ("{{ '%0999999999d' % 1 }}", "a format width over 262,144"),
    "ljust": ("{{ 'a'.ljust(1000000000) }}", "ljust(1000000000) is over 262,144"),
}


@pytest.fixture
def hostile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    """Settings whose TEMPLATES_DIR holds one hostile sms template per HOSTILE entry."""
    root = tmp_path / "tpl"
    (root / "h").mkdir(parents=True)
    for name, (source, _) in HOSTILE.items():
        text = source.replace('"', '\\"')
        (root / "h" / f"{name}.yaml").write_text(f'sms:\n  text: "{text}"\n', "utf-8")
    (root / "h" / "fine.yaml").write_text(
        "sms:\n  text: \"{% for i in order['items'] %}{{ loop.index }}.{{ i.sku }} {% endfor %}"
        "{{ 'ab' ~ 'c' }} {{ 2 ** 10 }} {{ 'x' * 3 }} {{ range(3) | list }} "
        "{{ '%d' | format(order.total) }} {{ order.total | replace('0', 'o') }} "
        "{{ '{:>3}'.format('a') }} {{ 7 % 3 }} {{ '%05d' % 42 }} {{ 'b' | center(3) }}\"\n",
        "utf-8",
    )
    monkeypatch.setenv("TEMPLATES_DIR", str(root))
    monkeypatch.setenv("SECRET_KEY", "test-secret-key-0123456789abcdef")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_template_is_refused_quickly_with_a_fix(hostile: Settings, name: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateProblem) as info:
        render(f"h/{name}", "sms", sample_context(hostile), settings=hostile)
    assert time.monotonic() - started < 6
    text = str(info.value)
    assert text.startswith(f"template 'h/{name}' [vi] sms.text: ")
    assert HOSTILE[name][1] in text and "\n" not in text
    assert info.value.fix, "every limit names a fix"
    assert validate_template(f"h/{name}", hostile) == [text]


def test_ordinary_template_still_renders(hostile: Settings) -> None:
    out = render("h/fine", "sms", sample_context(hostile), settings=hostile)
    assert out.text == ("1.AT-001 2.QJ-014 abc 1024 xxx [0, 1, 2] 1250000 125oooo   a 1 00042  b")


def test_template_problem_is_a_definition_error() -> None:
    assert issubclass(TemplateProblem, DefinitionError)
    problem = TemplateProblem("range() too big", where="template 't' sms.text", fix="smaller")
    assert str(problem) == "template 't' sms.text: range() too big; smaller"


@pytest.mark.parametrize("name", ["nested_range", "recursive_macro", "power"])
def test_templates_render_cli_gives_one_line(hostile: Settings, name: str) -> None:
    started = time.monotonic()
    result = runner.invoke(app, ["templates", "render", f"h/{name}", "--sample"])
    assert time.monotonic() - started < 6
    assert result.exit_code == 2, result.output
    assert f"h/{name}" in result.stderr and HOSTILE[name][1] in result.stderr
    assert "Traceback" not in result.output and "\n" not in result.stderr.strip()


def test_apply_refuses_a_sequence_whose_template_explodes(
    hostile: Settings, settings: Settings, tmp_path: Path
) -> None:
    book = tmp_path / "boom.yaml"
    book.write_text(
        "sequence: boom\ntrigger: {event: order.created}\npurpose: transactional\n"
        "steps:\n  - send: {channel: sms, template: h/nested_range}\n",
        "utf-8",
    )
    started = time.monotonic()
    result = runner.invoke(app, ["apply", str(book), "--dry-run"])
    assert time.monotonic() - started < 6
    assert result.exit_code == 2, result.output
    assert "boom.yaml:5" in result.stderr and "range() of 100,000 numbers" in result.stderr
    assert "Traceback" not in result.output


def test_template_yaml_alias_bomb_is_refused_by_the_shared_loader(hostile: Settings) -> None:
    """Template files go through the definition language's loader and its alias limits."""
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    (Path(hostile.templates_dir or "") / "h" / "bomb.yaml").write_text(
        bomb + "sms:\n  text: hi\n", "utf-8"
    )
    started = time.monotonic()
    with pytest.raises(TemplateProblem) as info:
        render("h/bomb", "sms", sample_context(hostile), settings=hostile)
    assert time.monotonic() - started < 2
    assert "bomb.yaml" in str(info.value) and "alias bomb" in str(info.value)
    assert "\n" not in str(info.value)
