"""`mactl templates render | validate`: preview a template, check them all against samples."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import typer
from rich.markup import escape

from admin_cli.output import UserError, console, fail, load_settings, print_json, user_errors
from automation.messages.errors import TemplateProblem
from automation.messages.lookup import KINDS, list_templates, load_template
from automation.messages.render import render
from automation.messages.samples import sample_context
from automation.messages.validate import validate_template

app = typer.Typer(help="Message templates: preview and validate.")


def _context(contact_id: int | None) -> dict[str, Any]:
    settings = load_settings()
    ctx = sample_context(settings)
    if contact_id is None:
        return ctx
    from automation.core.db import session_scope
    from automation.core.models import Contact
    from automation.delivery.context import contact_view

    with session_scope(settings) as session:
        contact = session.get(Contact, contact_id)
        if contact is None:
            raise UserError(f"--contact {contact_id}: no such contact (see `mactl contacts`)")
        ctx["contact"] = contact_view(contact, settings)
        ctx["timezone"] = ctx["contact"]["timezone"]
    return ctx


@app.command("render")
def render_cmd(
    name: str = typer.Argument(..., help="Template name, e.g. order_status/shipped."),
    contact: int | None = typer.Option(None, "--contact", help="Contact id (else --sample)."),
    sample: bool = typer.Option(False, "--sample", help="Use the sample contact/order/cart."),
    channel: str | None = typer.Option(None, "--channel", help=f"One of {', '.join(KINDS)}."),
    locale: str | None = typer.Option(None, "--locale", help="vi (default) or en."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Render a template (every channel section, or one) for a contact or the sample data."""
    with user_errors():
        if contact is not None and sample:
            raise UserError("use either --contact ID or --sample, not both")
        try:
            data = load_template(name)
            kinds = [channel] if channel else [k for k in KINDS if k in data]
            ctx = _context(contact)
            outputs = [asdict(render(name, k, ctx, locale)) for k in kinds]
        except TemplateProblem as exc:
            raise UserError(str(exc)) from None
    if as_json:
        print_json(outputs)
        return
    out = console()
    for item in outputs:
        out.rule(f"{name} · {item['channel']} · {item['locale']}")
        for key in ("subject", "template_id", "text", "html", "params", "buttons"):
            if item.get(key):
                out.print(f"[bold]{key}:[/bold]", markup=True)
                out.print(item[key], markup=False, highlight=False)


@app.command("validate")
def validate_cmd(
    names: list[str] = typer.Argument(None, help="Templates to check (default: all)."),  # noqa: B008
    marketing: bool = typer.Option(
        False, "--marketing", help="Count the [QC] label and opt-out in SMS segments."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Render every section of every template against the sample data and report problems."""
    settings = load_settings()
    purpose = "marketing" if marketing else None
    with user_errors():
        checked = list(names) if names else list_templates(settings)
        problems = {n: p for n in checked if (p := validate_template(n, settings, purpose=purpose))}
    if as_json:
        print_json({"checked": len(checked), "problems": problems})
    else:
        for name, items in problems.items():
            for problem in items:
                console().print(
                    f"[red]✗[/red] {escape(name)}: {escape(problem)}", markup=True, highlight=False
                )
        if not problems:
            console().print(f"[green]✓[/green] {len(checked)} template(s) valid", markup=True)
    if problems:
        fail(f"{sum(len(p) for p in problems.values())} template problem(s)")
