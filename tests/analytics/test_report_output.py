"""`mactl report` output: 80-column Rich tables, one-line errors, and the HTML page in
headless Chromium with its charts and no request leaving the machine."""

from __future__ import annotations

import io
import json
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sqlalchemy import select
from typer.testing import CliRunner

from admin_cli.main import app
from admin_cli.report_cmd import render_report
from automation.core.models import Message
from automation.sequences.schema import parse_sequence_text
from automation.sequences.store import apply_definition
from tests.analytics.helpers import report_json
from tests.feedback.test_unsubscribe_browser import DevTools, chromium_binary
from tests.playbooks.test_playbooks import Shop, _order

runner = CliRunner()
AB = """
sequence: welcome_ab
trigger: {event: lead.captured}
steps:
  - split:
      - {name: a, percent: 50, steps: [{send: {channel: email, template: lead_capture/welcome}}]}
      - {name: b, percent: 50, steps: [{send: {channel: email, template: lead_capture/welcome}}]}
"""


def _month(shop: Shop) -> None:
    """A few leads and carts, clicks and an order of 1.250.000 ₫, over three days."""
    with shop.sim.factory() as session:
        apply_definition(session, parse_sequence_text(textwrap.dedent(AB), "ab.yaml"))
        session.commit()
    people = [shop.person(f"P{n}", f"p{n}@example.com", phone=f"09123450{n:02d}") for n in range(6)]
    for person in people:
        shop.event("lead.captured", person, form="popup")
    with shop.sim.factory() as session:
        first = session.scalars(select(Message).order_by(Message.id)).first()
        assert first is not None
        shop.sim.clicks.insert(0, (shop.clock.now(), first.id, "clicked"))
    shop.sim.engage_until(shop.clock.now() + timedelta(seconds=1))
    shop.advance(timedelta(days=1), step=timedelta(hours=12))
    shop.event("order.created", people[0], **_order("H-1"))
    shop.advance(timedelta(days=2), step=timedelta(hours=12))


def test_report_fits_80_columns_without_breaking_words(shop: Shop) -> None:
    _month(shop)
    report = report_json()
    buffer = io.StringIO()
    render_report(report, Console(file=buffer, width=80, color_system=None))
    text = buffer.getvalue()
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80, text
    for word in ("lead_capture", "order_status", "cart_recovery", "welcome_ab", "1.250.000 ₫"):
        assert word in text, f"{word!r} broken or missing:\n{text}"
    assert "verdict: no winner yet" in text
    assert "Deliverability by channel" in text


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--since", "notadate"], "--since: 'notadate' is not a date; write YYYY-MM-DD"),
        (["--until", "2026-13-01"], "--until: '2026-13-01' is not a date"),
        (["--since", "2026-11-05", "--until", "2026-11-01"], "is before --since"),
        (["--sequence", "nope"], "unknown sequence 'nope'"),
    ],
)
def test_bad_flags_give_one_line_errors(shop: Shop, args: list[str], expected: str) -> None:
    result = runner.invoke(app, ["report", *args])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0], result.output
    assert "Traceback" not in result.output


def test_since_and_until_select_enrollments_by_day(shop: Shop) -> None:
    _month(shop)
    day = shop.clock.now().date()
    assert report_json("--since", f"{day + timedelta(days=1)}")["totals"]["enrolled"] == 0
    assert report_json("--since", f"{day - timedelta(days=5)}")["totals"]["enrolled"] > 0


def test_html_report_renders_in_chromium_with_charts_and_no_outside_request(
    shop: Shop, tmp_path: Path
) -> None:
    _month(shop)
    page = tmp_path / "report.html"
    result = runner.invoke(app, ["report", "--html", str(page)])
    assert result.exit_code == 0, result.output
    html = page.read_text(encoding="utf-8")
    assert "<script" not in html and "<link" not in html and "@import" not in html
    browser = DevTools(chromium_binary(), tmp_path / "profile")
    try:
        browser.open_page()
        browser.call("Network.enable")
        browser.navigate(page.as_uri())
        requested = [
            e["params"]["request"]["url"]
            for e in browser.events
            if e.get("method") == "Network.requestWillBeSent"
        ]
        funnels = browser.evaluate(
            "[...document.querySelectorAll('svg.chart[data-chart=funnel]')]"
            ".map(s => [s.dataset.sequence, s.querySelectorAll('rect').length,"
            " s.getBoundingClientRect().width])"
        )
        daily = browser.evaluate(
            "(() => { const s = document.querySelector('svg.chart[data-chart=daily]');"
            " return [s.querySelectorAll('rect').length, s.getBoundingClientRect().height,"
            " !!s.querySelector('polyline')]; })()"
        )
        verdicts = browser.evaluate(
            "[...document.querySelectorAll('.verdict')].map(p => p.innerText)"
        )
        title = browser.evaluate("document.title")
    finally:
        browser.close()
    assert title == "Marketing report"
    assert all(url.startswith("file://") for url in requested), requested
    by_key = {key: (bars, width) for key, bars, width in funnels}
    assert {"lead_capture", "welcome_ab", "cart_recovery"} <= set(by_key)
    assert all(bars == 6 and width > 100 for bars, width in by_key.values())
    assert daily[0] >= 2 and daily[1] > 100 and daily[2] is True
    assert verdicts and verdicts[0].startswith("no winner yet")
    json.dumps(funnels)  # plain values came back from the page
