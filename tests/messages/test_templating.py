"""Templates: filters, strict undefined, sandbox, per-channel limits, locales, links."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.numbers import format_currency

from automation import links
from automation.core.config import Settings, get_settings
from automation.messages.errors import TemplateProblem
from automation.messages.filters import vnd
from automation.messages.html_text import html_to_text
from automation.messages.lookup import list_templates, snapshot
from automation.messages.render import render
from automation.messages.samples import sample_context
from automation.messages.validate import validate_template


@pytest.fixture
def tsettings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Settings]:
    root = tmp_path / "tpl"
    files = {
        "x/money.yaml": (
            'sms:\n  text: "Don {{ order.order_number }}: {{ order.total | vnd }}, '
            'giao {{ order.created_at | vn_date }}"\n'
            'locales:\n  en:\n    sms:\n      text: "Order {{ order.order_number }}: '
            "{{ now | vn_date('EEEE d MMMM') }}\"\n"
        ),
        "x/missing.yaml": 'sms:\n  text: "Hi {{ contact.nickname }}"\n',
        "x/unsafe.yaml": "sms:\n  text: \"{{ ''.__class__.__mro__[1].__subclasses__() }}\"\n",
        "x/mutate.yaml": 'sms:\n  text: "{{ contact.tags.append(1) }}"\n',
        "x/long.yaml": 'sms:\n  text: "{% for i in range(40) %}Xin chào bạn {% endfor %}"\n',
        "x/zns.yaml": (
            "zalo_zns:\n  template_id: '1'\n  params:\n"
            '    customer_name: "{{ contact.full_name }} {{ contact.full_name }}"\n'
        ),
        "x/mail.yaml": (
            "email:\n  subject: \"Chào {{ contact.first_name | first_name_or('bạn') }}\"\n"
            '  html: "<p>Xin chào {{ contact.attributes.city }} &amp; '
            '<a href=\\"https://shop.vn/a?x=1&amp;y=2\\">mua</a></p>"\n'
        ),
        "x/xss.yaml": 'email:\n  subject: "s"\n  html: "<p>{{ contact.first_name }}</p>"\n',
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("TEMPLATES_DIR", str(root))
    monkeypatch.setenv("SECRET_KEY", "test-secret-key-0123456789abcdef")
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


def test_vnd_filter() -> None:
    assert vnd(1250000) == "1.250.000 ₫"
    assert vnd("0") == "0 ₫"
    for amount in (0, 7, -999, 1000, -1250000, 99_999_999, 10**15, -(10**18) - 1):
        babel = format_currency(amount, "VND", locale="vi_VN").replace("\xa0", " ")
        assert vnd(amount) == babel


def test_vnd_and_vietnamese_date(tsettings: Settings) -> None:
    out = render("x/money", "sms", sample_context(tsettings))
    assert out.text == "Don #1001: 1.250.000 ₫, giao 02/11/2026 10:00"


def test_english_locale_and_contact_timezone(tsettings: Settings) -> None:
    ctx = sample_context(tsettings)
    ctx["now"] = datetime(2026, 11, 2, 18, 0, tzinfo=UTC)  # Tuesday 01:00 in Vietnam
    assert render("x/money", "sms", ctx, "en-US").text == "Order #1001: Tuesday 3 November"
    assert render("x/money", "sms", ctx, "vi").locale == "vi"


def test_strict_undefined_names_the_template(tsettings: Settings) -> None:
    with pytest.raises(TemplateProblem, match=r"x/missing.*sms\.text.*nickname"):
        render("x/missing", "sms", sample_context(tsettings))


@pytest.mark.parametrize("name", ["x/unsafe", "x/mutate"])
def test_sandbox_rejects_unsafe_constructs(tsettings: Settings, name: str) -> None:
    with pytest.raises(TemplateProblem, match="unsafe construct"):
        render(name, "sms", sample_context(tsettings))
    assert any("unsafe" in p for p in validate_template(name, tsettings))


def test_sms_segment_limit(tsettings: Settings) -> None:
    problems = validate_template("x/long", tsettings)
    assert len(problems) == 1 and "SMS segments > SMS_MAX_SEGMENTS=3" in problems[0]
    assert validate_template("x/money", tsettings) == []


def test_zns_param_limit(tsettings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(TemplateProblem, match="customer_name: .* > Zalo limit 30"):
        ctx = sample_context(tsettings)
        ctx["contact"]["full_name"] = "Nguyễn Thị Lan Hương Giang"
        render("x/zns", "zalo_zns", ctx)
    monkeypatch.setenv("ZNS_PARAM_LIMITS", '{"customer_name": 100}')
    get_settings.cache_clear()
    ctx = sample_context(get_settings())
    ctx["contact"]["full_name"] = "Nguyễn Thị Lan Hương Giang"
    assert render("x/zns", "zalo_zns", ctx).params["customer_name"].startswith("Nguyễn")


def test_email_text_from_html_and_link_rewriting(tsettings: Settings) -> None:
    out = render("x/mail", "email", sample_context(tsettings), message_id=42)
    assert out.subject == "Chào Lan"
    assert out.links == ["https://shop.vn/a?x=1&y=2"]
    token = out.html.split("/t/c/")[1].split('"')[0] if out.html else ""
    assert links.verify_click(token, tsettings) == (42, 0)
    assert out.text.startswith("Xin chào Hà Nội & mua (http://127.0.0.1:8000/t/c/")


def test_html_is_autoescaped(tsettings: Settings) -> None:
    ctx = sample_context(tsettings)
    ctx["contact"]["first_name"] = "<script>x</script>"
    out = render("x/xss", "email", ctx)
    assert out.html == "<p>&lt;script&gt;x&lt;/script&gt;</p>"


def test_html_to_text() -> None:
    text = html_to_text("<style>p{}</style><p>A&amp;B</p><ul><li>one</li><li>two</li></ul>")
    assert text == "A&B\n\n- one\n- two"


def test_shipped_templates_validate(tsettings: Settings) -> None:
    names = [n for n in list_templates(tsettings) if not n.startswith("x/")]
    assert names, "templates/ ships templates"
    for name in names:
        assert validate_template(name, tsettings, purpose="marketing") == [], name


def test_unknown_template_is_a_clear_error(tsettings: Settings) -> None:
    with pytest.raises(TemplateProblem, match="not found"):
        render("nope/none", "sms", sample_context(tsettings))


def test_a_snapshot_looks_a_template_up_once_and_only_inside_its_block(
    tsettings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A send batch renders one template for many rows: one lookup per batch, and an edit
    made between batches is seen by the next one."""
    import automation.messages.lookup as lookup

    lookups: list[str] = []
    find = lookup.find_template
    monkeypatch.setattr(lookup, "find_template", lambda n, s=None: lookups.append(n) or find(n, s))
    ctx = sample_context(tsettings)
    with snapshot():
        texts = {render("x/missing", "sms", ctx | {"contact": {"nickname": n}}).text for n in "ab"}
    assert texts == {"Hi a", "Hi b"} and lookups == ["x/missing"]

    path = Path(tsettings.templates_dir or "") / "x" / "missing.yaml"
    path.write_text('sms:\n  text: "Hello {{ contact.nickname }}"\n', encoding="utf-8")
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 5))
    with snapshot():
        assert render("x/missing", "sms", ctx | {"contact": {"nickname": "c"}}).text == "Hello c"
    assert lookups == ["x/missing", "x/missing"]
