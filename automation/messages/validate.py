"""Validating templates against sample data (``mactl apply``, ``mactl templates validate``)."""

from __future__ import annotations

from automation import links
from automation.core.config import Settings, get_settings
from automation.messages.compliance import decorate_sms
from automation.messages.errors import TemplateProblem
from automation.messages.lookup import KINDS, base_locale, list_templates, load_template
from automation.messages.render import render
from automation.messages.samples import sample_context
from channels.segments import count_segments


def validate_template(
    name: str, settings: Settings | None = None, *, purpose: str | None = None
) -> list[str]:
    """Render every section and locale of ``name`` against SAMPLE; return the problems found.

    Rejects missing variables (strict undefined), sandbox violations, rendering limits,
    syntax errors, ZNS parameters over Zalo's limits and SMS longer than SMS_MAX_SEGMENTS
    parts (with the marketing label and opt-out counted when ``purpose == "marketing"``).
    """
    settings = settings or get_settings()
    try:
        data = load_template(name, settings)
    except TemplateProblem as exc:
        return [str(exc)]
    locales = [base_locale(None), *sorted((data.get("locales") or {}).keys())]
    problems: list[str] = []
    for loc in locales:
        variant = data if loc == base_locale(None) else data["locales"][loc]
        if not isinstance(variant, dict):
            problems.append(f"template {name!r}: locales.{loc} must be a mapping of sections")
            continue
        for kind in KINDS:
            if kind not in variant:
                continue
            try:
                ctx = sample_context(settings)
                out = render(name, kind, ctx, loc, settings=settings, message_id=0)
            except TemplateProblem as exc:
                problems.append(str(exc))
                continue
            if kind == "sms":
                text = out.text
                if purpose == "marketing" and settings.compliance_profile != "none":
                    text = decorate_sms(text, links.unsubscribe_url(0, settings), settings)
                parts = count_segments(text).segments
                if parts > settings.sms_max_segments:
                    problems.append(
                        f"template {name!r} [{loc}] sms.text: {parts} SMS segments > "
                        f"SMS_MAX_SEGMENTS={settings.sms_max_segments} (shorten the text; "
                        f"Vietnamese diacritics use UCS-2: 70/67 characters per part)"
                    )
    return problems


def validate_all(settings: Settings | None = None) -> dict[str, list[str]]:
    """validate_template for every template found; only templates with problems are returned."""
    result: dict[str, list[str]] = {}
    for name in list_templates(settings):
        problems = validate_template(name, settings)
        if problems:
            result[name] = problems
    return result
