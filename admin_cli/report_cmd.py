"""`mactl report`: what each sequence sent and earned, for people (Rich), machines (JSON)
and browsers (one self-contained HTML page)."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import typer
from rich import box
from rich.console import Console
from rich.table import Table

from admin_cli.output import JSON, console, get_by_key, load_settings, print_json
from automation.core.db import session_scope
from automation.core.errors import InputError
from automation.core.models import Sequence

REPORT_ZONE = ZoneInfo("Asia/Ho_Chi_Minh")
SEQUENCE_COLUMNS = ["sequence", "enrolled", "sent", "click", "conv", "revenue"]
FUNNEL_RATES = ("delivered", "opened", "clicked", "replied", "unsubscribed")
#: Short channel names so a step row fits 80 columns.
SHORT_CHANNEL = {"zalo_zns": "zns", "zalo_oa": "oa", "messenger": "msgr"}
STEP_COLUMNS = ["step", "ch", "sent", "deliv", "open", "click", "reply", "unsub", "conv", "revenue"]
ARM_COLUMNS = ["arm", "enrolled", "clicked", "click", "conv", "conv %", "revenue"]
CHANNEL_RATES = ("delivered", "bounced", "complained", "fallback")
CHANNEL_COLUMNS = ["channel", "sent", "delivered", "bounced", "complaint", "fallback"]


def parse_day(value: str | None, option: str) -> date | None:
    """``YYYY-MM-DD`` -> date; InputError naming the option and the fix otherwise."""
    if value is None:
        return None
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        fix = "write YYYY-MM-DD, e.g. 2026-11-01"
        raise InputError(f"{value!r} is not a date", where=option, fix=fix) from None


def day_start(day: date) -> datetime:
    """Midnight of a Vietnam calendar day, as an aware datetime."""
    return datetime.combine(day, time(0), REPORT_ZONE)


def _pct(value: float) -> str:
    return f"{value * 100:.0f}%"


def _table(title: str, columns: list[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD, header_style="bold", title_justify="left",
                  pad_edge=False, title_style="bold", collapse_padding=True)  # fmt: skip
    for index, name in enumerate(columns):
        justify = "left" if index == 0 or name == "ch" else "right"
        table.add_column(name, justify=justify, no_wrap=True)
    for row in rows:
        table.add_row(*row)
    return table


def _step_row(row: dict[str, Any]) -> list[str]:
    rates = [_pct(row["rates"][name]) for name in FUNNEL_RATES]
    channel = SHORT_CHANNEL.get(row["channel"], row["channel"])
    return [row["step"], channel, str(row["sent"]), *rates,
            str(row["converted"]), row["revenue_text"]]  # fmt: skip


def _arm_row(arm: dict[str, Any]) -> list[str]:
    return [arm["arm"], str(arm["enrolled"]), str(arm["clicked"]), _pct(arm["click_rate"]),
            str(arm["converted"]), _pct(arm["conversion_rate"]), arm["revenue_text"]]  # fmt: skip


def _holdout_line(key: str, holdout: dict[str, Any]) -> str:
    treated, held, lift = holdout["treated"], holdout["holdout"], holdout["lift"]
    low, high = lift["interval"]
    return (
        f"{key} holdout: treated {treated['converted']}/{treated['enrolled']} converted "
        f"({_pct(treated['rate'])}), held out {held['converted']}/{held['enrolled']} "
        f"({_pct(held['rate'])}); lift {lift['difference'] * 100:+.1f} pts "
        f"(95% CI {low * 100:+.1f} to {high * 100:+.1f})"
    )


def _sequence(seq: dict[str, Any], out: Console) -> None:
    key = seq["key"]
    if seq["steps"]:
        rows = [_step_row(row) for row in seq["steps"]]
        out.print(_table(f"{key}: steps", STEP_COLUMNS, rows))
    if seq["holdout"]:
        out.print(_holdout_line(key, seq["holdout"]), markup=False)
    for split in seq["splits"]:
        rows = [_arm_row(arm) for arm in split["arms"]]
        out.print(_table(f"{key}: split at step {split['step']}", ARM_COLUMNS, rows))
        out.print(f"verdict: {split['verdict']['text']}", markup=False)


def render_report(report: dict[str, Any], out: Console) -> None:
    """Print the report as tables that fit an 80-column terminal."""
    period = report["period"]
    since, until = (period["since"] or "the start")[:10], (period["until"] or "now")[:10]
    out.print(f"Report for enrollments from {since} until {until}", markup=False)
    rows = [
        [s["key"], str(s["enrolled"]), str(s["sent"]), _pct(s["rates"]["clicked"]),
         str(s["converted"]), s["revenue_text"]]
        for s in report["sequences"]
    ]  # fmt: skip
    out.print(_table("Sequences", SEQUENCE_COLUMNS, rows))
    for seq in report["sequences"]:
        _sequence(seq, out)
    rows = [
        [c["channel"], str(c["sent"]), *(_pct(c["rates"][name]) for name in CHANNEL_RATES)]
        for c in report["channels"]
    ]
    out.print(_table("Deliverability by channel", CHANNEL_COLUMNS, rows))
    totals = report["totals"]
    out.print(
        f"total: {totals['sent']} sent, {totals['converted']} orders credited, "
        f"{totals['revenue_text']}",
        markup=False,
    )


app = typer.Typer()


@app.command("report")
def report_command(
    sequence: str | None = typer.Option(None, "--sequence", help="Only this sequence key."),
    since: str | None = typer.Option(None, "--since", help="First day (YYYY-MM-DD, Vietnam time)."),
    until: str | None = typer.Option(None, "--until", help="Last day, included (YYYY-MM-DD)."),
    as_json: bool = JSON,
    html: Path | None = typer.Option(  # noqa: B008
        None, "--html", help="Also write a self-contained HTML page."
    ),
) -> None:
    """Per sequence and step: sends, engagement, conversions, revenue, holdout lift and A/B."""
    from automation.analytics.queries import Cohort
    from automation.analytics.render import report_html
    from automation.analytics.report import build_report

    settings = load_settings()
    first, last = parse_day(since, "--since"), parse_day(until, "--until")
    if first and last and last < first:
        raise InputError(f"{last} is before --since {first}", where="--until", fix="swap them")
    cohort = Cohort(
        sequence,
        day_start(first) if first else None,
        day_start(last + timedelta(days=1)) if last else None,
    )
    with session_scope(settings) as session:
        if sequence is not None:
            get_by_key(session, Sequence, sequence, "sequence")
        report = build_report(session, cohort)
    if html is not None:
        html.write_text(report_html(report), encoding="utf-8")
    if as_json:
        print_json(report)
    else:
        render_report(report, console())
        if html is not None:
            console().print(f"HTML report: {html} (open it in a browser)", markup=False)


