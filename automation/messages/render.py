"""Rendering one channel section of a template for one recipient.

Sections (see :mod:`automation.messages.lookup`)::

    email:     {subject, html, text (optional: generated from html)}
    sms:       {text}
    zalo_zns:  {template_id, tag: 1|2|3 (transaction, customer care, promotion),
                params: {name: "{{ ... }}" | {value: "...", type: customer_name}}}
    zalo_oa:   {text}
    messenger: {text, buttons: [{title, url}]}

Every string renders in the limited sandbox (:mod:`automation.messages.sandbox`);
``email.html`` is autoescaped. With a message id, links are rewritten to signed
click URLs (:mod:`automation.messages.rewrite`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from automation.core.config import Settings, get_settings
from automation.messages import limits
from automation.messages.errors import TemplateProblem
from automation.messages.html_text import html_to_text
from automation.messages.lookup import KINDS, section
from automation.messages.rendered import Rendered
from automation.messages.rewrite import rewrite_links
from automation.messages.sandbox import render_fields, render_text
from automation.messages.zns import zns_limit, zns_tag

Field = Callable[..., str]
Fields = Callable[..., list[str]]
MESSENGER_TEXT_MAX, MESSENGER_BUTTON_TITLE_MAX, OA_TEXT_MAX = 640, 20, 2000


def render(
    template_name: str,
    channel: str,
    context: dict[str, Any],
    locale: str | None = None,
    *,
    settings: Settings | None = None,
    message_id: int | None = None,
) -> Rendered:
    """Render one channel section of a template; with ``message_id`` links are rewritten.

    Raises TemplateProblem naming the template, section and field on any error
    (missing variable, sandbox violation, syntax error, rendering limit, ZNS
    parameter too long). One rendering budget covers the whole section.
    """
    settings = settings or get_settings()
    sec, used = section(template_name, channel, locale, settings)
    ctx = {**context, "locale": used}
    where = f"template {template_name!r} [{used}] {channel}"

    def r(label: str, source: Any, html: bool = False) -> str:
        return render_text(f"{where}.{label}", source, ctx, html, settings.templates_dir)

    def rs(*fields: tuple[str, Any]) -> list[str]:  # plain-text fields, one pass
        named = [(f"{where}.{label}", source) for label, source in fields]
        return render_fields(named, ctx, settings.templates_dir)

    out = Rendered(channel=channel, locale=used)
    with limits.budget():
        if channel == "email":
            _email(out, sec, r, rs, where)
        elif channel in ("sms", "zalo_oa"):
            out.text = r("text", sec.get("text"))
            if channel == "zalo_oa" and len(out.text) > OA_TEXT_MAX:
                raise TemplateProblem(f"{where}.text: {len(out.text)} characters > {OA_TEXT_MAX}")
        elif channel == "zalo_zns":
            _zns(out, sec, rs, where, settings)
        elif channel == "messenger":
            _messenger(out, sec, rs, where)
        else:
            raise TemplateProblem(f"unknown channel {channel!r}; use one of {', '.join(KINDS)}")
    if message_id is not None:
        rewrite_links(out, message_id, settings)
    return out


def _email(out: Rendered, sec: dict[str, Any], r: Field, rs: Fields, where: str) -> None:
    text = sec.get("text") or None
    subject, out.text = rs(("subject", sec.get("subject")), ("text", text))
    out.subject = " ".join(subject.split())
    out.html = r("html", sec.get("html"), html=True) or None
    if text is None:
        out.text = html_to_text(out.html or "")
    if not out.subject:
        raise TemplateProblem(f"{where}: subject is empty (add `subject:`)")


def _zns(out: Rendered, sec: dict[str, Any], rs: Fields, where: str, settings: Settings) -> None:
    out.template_id = str(sec.get("template_id") or "")
    if not out.template_id:
        raise TemplateProblem(f"{where}: template_id is missing")
    tag = zns_tag(sec, where)
    out.tag = str(tag) if tag is not None else None
    params = sec.get("params") or {}
    if not isinstance(params, dict):
        raise TemplateProblem(f"{where}.params: must be a mapping name -> value")
    specs = []
    for pname, spec in params.items():
        declared, source, limit = None, spec, None
        if isinstance(spec, dict):
            source, declared = spec.get("value"), spec.get("type")
            if isinstance(spec.get("max"), int):
                limit = spec["max"]
        specs.append((pname, source, declared, limit))
    values = rs(*((f"params.{pname}", source) for pname, source, *_ in specs))
    for (pname, _, declared, limit), value in zip(specs, values, strict=True):
        limit = limit if limit is not None else zns_limit(str(pname), declared, settings)
        if len(value) > limit:
            raise TemplateProblem(
                f"{where}.params.{pname}: {len(value)} characters > Zalo limit {limit} "
                f"({value[:40]!r}...); shorten it or set its type/max"
            )
        out.params[str(pname)] = value


def _messenger(out: Rendered, sec: dict[str, Any], rs: Fields, where: str) -> None:
    out.tag = str(sec["tag"]) if sec.get("tag") else None
    fields = [("text", sec.get("text"))]
    for i, button in enumerate(sec.get("buttons") or []):
        if not isinstance(button, dict):
            raise TemplateProblem(f"{where}.buttons[{i}]: expected {{title, url}}")
        fields += [(f"buttons[{i}].{part}", button.get(part)) for part in ("title", "url")]
    out.text, *texts = rs(*fields)
    for i, (title, url) in enumerate(zip(texts[::2], texts[1::2], strict=True)):
        if len(title) > MESSENGER_BUTTON_TITLE_MAX:
            raise TemplateProblem(
                f"{where}.buttons[{i}].title: {len(title)} characters > "
                f"{MESSENGER_BUTTON_TITLE_MAX}"
            )
        out.buttons.append({"type": "web_url", "title": title, "url": url})
    if len(out.text) > MESSENGER_TEXT_MAX:
        raise TemplateProblem(f"{where}.text: {len(out.text)} characters > {MESSENGER_TEXT_MAX}")
