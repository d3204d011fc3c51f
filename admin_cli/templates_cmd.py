"""`mactl templates render | validate`: preview a template, check them all against samples."""

from __future__ import annotations

from dataclasses import asdict

import typer
from rich.markup import escape

from admin_cli.contact_ref import CONTACT_HELP
from admin_cli.output import JSON, console, fail, load_settings, print_json
from admin_cli.template_context import template_context
from automation.core.errors import DefinitionError, InputError
from automation.core.vocabulary import CHANNELS, MARKETING
from automation.messages.errors import TemplateProblem
from automation.messages.lookup import list_templates, load_template
from automation.messages.render import render
from automation.messages.validate import validate_template

app = typer.Typer(name="templates", help="Message templates: preview and validate.")


@app.command("render")
def render_cmd(
    name: str = typer.Argument(..., help="Template name, e.g. order_status/shipped."),
    contact: str | None = typer.Option(
        None, "--contact", metavar="CONTACT", help=f"{CONTACT_HELP} (Else the sample data.)"
    ),
    sample: bool = typer.Option(False, "--sample", help="Use the sample contact/order/cart."),
    channel: str | None = typer.Option(None, "--channel", help=f"One of {', '.join(CHANNELS)}."),
    locale: str | None = typer.Option(None, "--locale", help="vi (default) or en."),
    as_json: bool = JSON,
) -> None:
    """Render a template (every channel section, or one) for a contact or the sample data."""
    settings = load_settings()
    if contact is not None and sample:
        raise InputError("both given", where="--contact/--sample", fix="use one of them")
    try:
        data = load_template(name, settings)
        kinds = [channel] if channel else [k for k in CHANNELS if k in data]
        ctx = template_context(settings, contact)
        outputs = [asdict(render(name, k, ctx, locale, settings=settings)) for k in kinds]
    except TemplateProblem as exc:
        raise DefinitionError(str(exc)) from None
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
    as_json: bool = JSON,
) -> None:
    """Render every section of every template against the sample data and report problems."""
    settings = load_settings()
    purpose = MARKETING if marketing else None
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
