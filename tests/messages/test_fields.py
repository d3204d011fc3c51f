"""Several fields of a section rendered in one pass: the same texts and errors as one by one."""

from __future__ import annotations

from typing import Any

import pytest

from automation.messages import limits, sandbox
from automation.messages.errors import TemplateProblem
from automation.messages.sandbox import SEPARATOR, render_fields, render_text

CONTEXT = {"contact": {"first_name": "Lan", "total": 1250000, "note": ""}}
FIELDS = [
    ("t.name", "  {{ contact.first_name }}  "),
    ("t.empty", None),
    ("t.money", "{{ contact.total | vnd }}"),
    ("t.loop", "{% for c in 'ab' %}{{ c }}{% endfor %}"),
    ("t.number", 7),
]


def one_by_one(fields: list[tuple[str, Any]], context: dict[str, Any]) -> list[str]:
    return [render_text(where, source, context) for where, source in fields]


def test_one_pass_gives_what_one_by_one_gives(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = one_by_one(FIELDS, CONTEXT)
    assert expected == ["Lan", "", "1.250.000 ₫", "ab", "7"]

    def refuse(*args: Any) -> str:
        raise AssertionError("rendered field by field")

    monkeypatch.setattr(sandbox, "render_text", refuse)
    assert render_fields(FIELDS, CONTEXT) == expected


def test_a_set_stays_in_its_field() -> None:
    fields = [("t.a", "{% set x = 1 %}{{ x }}"), ("t.b", "{{ x }}")]
    with pytest.raises(TemplateProblem, match=r"t\.b: UndefinedError"):
        render_fields(fields, CONTEXT)


def test_errors_name_their_field() -> None:
    fields = [("t.a", "{{ contact.first_name }}"), ("t.b", "{{ contact.missing }}")]
    with pytest.raises(TemplateProblem, match=r"t\.b: UndefinedError"):
        render_fields(fields, CONTEXT)
    broken = [("t.a", "{% if true %}"), ("t.b", "{% endif %}")]
    with pytest.raises(TemplateProblem, match=r"t\.a: TemplateSyntaxError"):
        render_fields(broken, CONTEXT)


def test_a_value_holding_the_separator_is_rendered_field_by_field() -> None:
    context = {"contact": {**CONTEXT["contact"], "note": f"x{SEPARATOR}y"}}
    fields = [("t.a", "{{ contact.note }}"), ("t.b", "{{ contact.first_name }}")]
    assert render_fields(fields, context) == one_by_one(fields, context) == [
        f"x{SEPARATOR}y",
        "Lan",
    ]


def test_a_failed_trial_spends_nothing_of_the_budget() -> None:
    with limits.budget() as spend:
        with pytest.raises(ZeroDivisionError), limits.trial():
            limits.current().step()
            raise ZeroDivisionError
        assert spend.iterations == 0
        with limits.trial():
            limits.current().step()
        assert spend.iterations == 1
