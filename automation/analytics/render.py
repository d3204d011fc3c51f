"""The report as one self-contained HTML page: inline CSS and SVG charts, nothing fetched.

A funnel chart per sequence, a daily sends / conversions chart, the holdout lift and the
A/B verdicts. Every chart is an ``<svg class="chart" data-chart="...">`` element.
"""

from __future__ import annotations

from html import escape
from typing import Any

STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1f2933}
h1{font-size:22px}h2{font-size:18px;margin-top:28px}table{border-collapse:collapse;margin:8px 0}
td,th{padding:4px 10px;border-bottom:1px solid #d9e2ec;text-align:right}
td:first-child,th:first-child{text-align:left}.verdict{font-weight:600}
.muted{color:#627d98}svg{display:block;margin:8px 0}
"""
FUNNEL = ("enrolled", "sent", "delivered", "opened", "clicked", "converted")
COLOURS = ("#486581", "#2680c2", "#3ebd93", "#f7c948", "#f0b429", "#e12d39")


def _funnel(seq: dict[str, Any]) -> str:
    values = [int(seq[name]) for name in FUNNEL]
    top = max(values) or 1
    bar_h, label_w, width = 26, 90, 520
    rows = []
    for index, (name, value) in enumerate(zip(FUNNEL, values, strict=True)):
        y = index * (bar_h + 6)
        w = max(2, round((width - label_w - 70) * value / top))
        rows.append(
            f'<text x="0" y="{y + 18}" font-size="13">{name}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{COLOURS[index]}">'
            f"<title>{name}: {value}</title></rect>"
            f'<text x="{label_w + w + 6}" y="{y + 18}" font-size="13">{value}</text>'
        )
    height = len(FUNNEL) * (bar_h + 6)
    return (
        f'<svg class="chart" data-chart="funnel" data-sequence="{escape(seq["key"])}" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
        f'xmlns="http://www.w3.org/2000/svg" role="img" aria-label="funnel">{"".join(rows)}</svg>'
    )


def _daily(days: list[dict[str, Any]]) -> str:
    width, height, pad = 640, 220, 30
    if not days:
        return '<p class="muted">No sends in this period.</p>'
    top_sent = max(d["sent"] for d in days) or 1
    top_conv = max(d["conversions"] for d in days) or 1
    step = (width - 2 * pad) / len(days)
    bars, points = [], []
    for index, day in enumerate(days):
        x = pad + index * step
        h = (height - 2 * pad) * day["sent"] / top_sent
        bars.append(
            f'<rect x="{x + 1:.1f}" y="{height - pad - h:.1f}" width="{max(step - 2, 1):.1f}" '
            f'height="{h:.1f}" fill="#9fb3c8">'
            f"<title>{day['date']}: {day['sent']} sent</title></rect>"
        )
        cy = height - pad - (height - 2 * pad) * day["conversions"] / top_conv
        points.append(f"{x + step / 2:.1f},{cy:.1f}")
    legend = (
        f'<text x="{pad}" y="16" font-size="12" fill="#486581">bars: messages sent per day '
        f"(max {top_sent})</text>"
        f'<text x="{width // 2}" y="16" font-size="12" fill="#e12d39">line: orders credited '
        f"per day (max {top_conv})</text>"
        f'<text x="{pad}" y="{height - 8}" font-size="11">{escape(days[0]["date"])}</text>'
        f'<text x="{width - pad - 70}" y="{height - 8}" font-size="11">'
        f"{escape(days[-1]['date'])}</text>"
    )
    line = f'<polyline fill="none" stroke="#e12d39" stroke-width="2" points="{" ".join(points)}"/>'
    return (
        f'<svg class="chart" data-chart="daily" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" xmlns="http://www.w3.org/2000/svg" role="img" '
        f'aria-label="daily sends and conversions">{"".join(bars)}{line}{legend}</svg>'
    )


def _table(columns: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(str(cell))}</td>" for cell in row) + "</tr>" for row in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _sequence(seq: dict[str, Any]) -> str:
    parts = [f'<section class="sequence"><h2>{escape(seq["key"])}</h2>', _funnel(seq)]
    parts.append(
        f"<p>{seq['enrolled']} enrolled, {seq['sent']} sent, {seq['converted']} orders credited, "
        f"revenue {escape(seq['revenue_text'])}</p>"
    )
    steps = [
        [f"{r['step']} {r['channel']}", r["sent"], _pct(r["rates"]["delivered"]),
         _pct(r["rates"]["opened"]), _pct(r["rates"]["clicked"]), _pct(r["rates"]["replied"]),
         _pct(r["rates"]["unsubscribed"]), r["converted"], r["revenue_text"]]
        for r in seq["steps"]
    ]  # fmt: skip
    if steps:
        parts.append(_table(
            ["step", "sent", "delivered", "opened", "clicked", "replied", "unsub", "orders",
             "revenue"], steps))  # fmt: skip
    holdout = seq["holdout"]
    if holdout:
        lift = holdout["lift"]
        parts.append(
            f'<p class="holdout">Holdout: treated {_pct(holdout["treated"]["rate"])} of '
            f"{holdout['treated']['enrolled']} converted, held out "
            f"{_pct(holdout['holdout']['rate'])} of {holdout['holdout']['enrolled']}; lift "
            f"{lift['difference'] * 100:+.1f} points (95% CI {lift['interval'][0] * 100:+.1f} "
            f"to {lift['interval'][1] * 100:+.1f})</p>"
        )
    for split in seq["splits"]:
        rows = [[a["arm"], a["enrolled"], _pct(a["click_rate"]), _pct(a["conversion_rate"]),
                 a["revenue_text"]] for a in split["arms"]]  # fmt: skip
        parts.append(f"<h3>A/B split at step {escape(split['step'])}</h3>")
        parts.append(_table(["arm", "enrolled", "click rate", "conversion", "revenue"], rows))
        parts.append(f'<p class="verdict">{escape(split["verdict"]["text"])}</p>')
    parts.append("</section>")
    return "".join(parts)


def report_html(report: dict[str, Any]) -> str:
    """The whole report as one HTML document (UTF-8, no external resources)."""
    period = report["period"]
    since, until = (period["since"] or "the start")[:10], (period["until"] or "now")[:10]
    channels = [
        [c["channel"], c["sent"], _pct(c["rates"]["delivered"]), _pct(c["rates"]["bounced"]),
         _pct(c["rates"]["complained"]), _pct(c["rates"]["fallback"])]
        for c in report["channels"]
    ]  # fmt: skip
    totals = report["totals"]
    return (
        '<!doctype html><html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>Marketing report</title><style>{STYLE}</style></head><body>"
        f'<h1>Marketing report</h1><p class="muted">Enrollments from {escape(since)} until '
        f"{escape(until)}: {totals['sent']} sent, {totals['converted']} orders credited, "
        f"{escape(totals['revenue_text'])}</p>"
        "<h2>Daily sends and conversions</h2>"
        f"{_daily(report['daily'])}"
        f"{''.join(_sequence(seq) for seq in report['sequences'])}"
        "<h2>Deliverability by channel</h2>"
        + _table(["channel", "sent", "delivered", "bounced", "complaint", "fallback"], channels)
        + "</body></html>"
    )
