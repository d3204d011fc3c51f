"""Message templates: one sandboxed Jinja2 environment, per-channel sections, validation.

A template is ``templates/<sequence>/<name>.yaml`` (or the same path under
``settings.templates_dir``, searched first) with one section per channel kind::

    email:     {subject, html, text (optional: generated from html)}
    sms:       {text}
    zalo_zns:  {template_id, params: {name: "{{ ... }}" | {value: "...", type: customer_name}}}
    zalo_oa:   {text}
    messenger: {text, buttons: [{title, url}]}
    locales:   {en: {<same sections>}}

Every string is a Jinja2 template rendered in an ImmutableSandboxedEnvironment with
StrictUndefined; ``email.html`` is autoescaped. Filters: ``vnd``, ``vn_date``,
``first_name_or``. Link rewriting (email html/text, sms) turns every http(s) link into
a signed click URL (automation.links) and reports the targets for ``Message.links``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from html import escape as html_escape
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from babel.dates import format_date, format_datetime
from babel.numbers import format_currency
from jinja2 import (
    ChoiceLoader,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateError,
    pass_context,
)
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from automation import links
from automation.core.config import Settings, get_settings
from channels.segments import count_segments

PACKAGE_TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
KINDS = ("email", "sms", "zalo_zns", "zalo_oa", "messenger")
#: Zalo ZNS parameter limits by parameter type (Zalo Cloud "data formats for ZNS
#: parameters": customer name 30; other sizes as listed there, best effort).
#: Unknown names get "default" (Zalo: "usually 30"). Override with ZNS_PARAM_LIMITS.
ZNS_TYPE_LIMITS: dict[str, int] = {
    "customer_name": 30,
    "phone": 15,
    "address": 200,
    "code": 30,
    "label": 30,
    "status": 30,
    "contact": 50,
    "gender": 5,
    "product_name": 200,
    "amount": 20,
    "time": 20,
    "otp": 10,
    "url": 200,
    "default": 30,
}
_TYPE_HINTS: tuple[tuple[str, str], ...] = (
    ("otp", "otp"),
    ("url", "url"),
    ("link", "url"),
    ("phone", "phone"),
    ("address", "address"),
    ("product", "product_name"),
    ("item", "product_name"),
    ("customer", "customer_name"),
    ("name", "customer_name"),
    ("status", "status"),
    ("total", "amount"),
    ("amount", "amount"),
    ("price", "amount"),
    ("cost", "amount"),
    ("date", "time"),
    ("time", "time"),
    ("code", "code"),
    ("number", "code"),
    ("id", "code"),
)
MESSENGER_TEXT_MAX, MESSENGER_BUTTON_TITLE_MAX, OA_TEXT_MAX = 640, 20, 2000
URL_RE = re.compile(r"https?://[^\s<>\"'`]+")
HREF_RE = re.compile(r"""(href\s*=\s*)(["'])(https?://[^"']+)\2""", re.IGNORECASE)


class TemplateProblem(ValueError):
    """A template that cannot be loaded or rendered; the message names file, section and fix."""


@dataclass
class Rendered:
    """One channel section rendered for one recipient."""

    channel: str
    text: str = ""
    subject: str | None = None
    html: str | None = None
    template_id: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    buttons: list[dict[str, str]] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    locale: str = "vi"
    tag: str | None = None


# --------------------------------------------------------------------------- filters


def vnd(value: Any) -> str:
    """``1250000`` -> ``1.250.000 ₫`` (Babel, vi_VN; VND has no minor unit)."""
    try:
        amount = int(value)
    except (TypeError, ValueError):
        return str(value)
    return str(format_currency(amount, "VND", locale="vi_VN")).replace("\xa0", " ")


def _zone(name: Any) -> ZoneInfo:
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(get_settings().default_timezone)


@pass_context
def vn_date(ctx: Context, value: Any, fmt: str | None = None) -> str:
    """A date/time in the contact's timezone and locale (Babel pattern or short/medium/full)."""
    if value in (None, ""):
        return ""
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    locale = str(ctx.get("locale") or "vi")
    if not isinstance(when, datetime):
        return str(format_date(when, fmt or "dd/MM/yyyy", locale=locale))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    zone = _zone(ctx.get("timezone"))
    return str(format_datetime(when, fmt or "dd/MM/yyyy HH:mm", tzinfo=zone, locale=locale))


def first_name_or(value: Any, fallback: str = "bạn") -> str:
    """The first name, or ``fallback`` when it is missing or blank."""
    text = "" if value is None else str(value).strip()
    return text or fallback


def _environment(extra_dir: str | None) -> ImmutableSandboxedEnvironment:
    search = [str(Path(extra_dir))] if extra_dir else []
    search.append(str(PACKAGE_TEMPLATES))
    env = ImmutableSandboxedEnvironment(
        loader=ChoiceLoader([FileSystemLoader(search)]),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=False,
    )
    env.filters["vnd"] = vnd
    env.filters["vn_date"] = vn_date
    env.filters["first_name_or"] = first_name_or
    return env


@lru_cache(maxsize=4)
def environment(extra_dir: str | None = None) -> ImmutableSandboxedEnvironment:
    """The one sandboxed environment (per extra template folder)."""
    return _environment(extra_dir)


# --------------------------------------------------------------------------- loading


def template_dirs(settings: Settings | None = None) -> list[Path]:
    """Folders searched for templates, first match wins (extra dir, then package)."""
    settings = settings or get_settings()
    dirs = [Path(settings.templates_dir)] if settings.templates_dir else []
    return [*dirs, PACKAGE_TEMPLATES]


def find_template(name: str, settings: Settings | None = None) -> Path:
    """The YAML file for ``name`` (``sequence/name``); TemplateProblem when missing."""
    if ".." in Path(name).parts or name.startswith("/"):
        raise TemplateProblem(f"template {name!r}: use a relative name like order_status/shipped")
    dirs = template_dirs(settings)
    for folder in dirs:
        for suffix in (".yaml", ".yml"):
            path = folder / f"{name}{suffix}"
            if path.is_file():
                return path
    where = ", ".join(str(d) for d in dirs)
    raise TemplateProblem(f"template {name!r} not found (looked for {name}.yaml in {where})")


def list_templates(settings: Settings | None = None) -> list[str]:
    """Every template name available, sorted."""
    names: set[str] = set()
    for folder in template_dirs(settings):
        if folder.is_dir():
            for path in [*folder.rglob("*.yaml"), *folder.rglob("*.yml")]:
                names.add(path.relative_to(folder).with_suffix("").as_posix())
    return sorted(names)


@lru_cache(maxsize=512)
def _load_file(path: str, mtime: float) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise TemplateProblem(f"{path}{line}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise TemplateProblem(f"{path}: expected a mapping with sections {', '.join(KINDS)}")
    unknown = set(data) - {*KINDS, "locales"}
    if unknown:
        raise TemplateProblem(
            f"{path}: unknown section(s) {sorted(unknown)}; allowed: {', '.join(KINDS)}, locales"
        )
    return data


def load_template(name: str, settings: Settings | None = None) -> dict[str, Any]:
    """The parsed YAML of template ``name`` (cached until the file changes)."""
    path = find_template(name, settings)
    return _load_file(str(path), path.stat().st_mtime)


def base_locale(locale: str | None) -> str:
    """``en-US`` / ``en_US`` -> ``en``; None -> the default locale."""
    value = (locale or get_settings().default_locale or "vi").replace("_", "-")
    return value.split("-")[0].lower()


def section(
    name: str, channel: str, locale: str | None, settings: Settings | None = None
) -> tuple[dict[str, Any], str]:
    """The channel section for ``locale`` (falls back to the default language) and its locale."""
    data = load_template(name, settings)
    loc = base_locale(locale)
    variants = data.get("locales") or {}
    localized = variants.get(loc) if loc != base_locale(None) else None
    if isinstance(localized, dict) and channel in localized:
        chosen, used = variants[loc][channel], loc
    elif channel in data:
        chosen, used = data[channel], base_locale(None)
    else:
        raise TemplateProblem(f"template {name!r} has no {channel!r} section")
    if not isinstance(chosen, dict):
        raise TemplateProblem(f"template {name!r}: section {channel!r} must be a mapping")
    return chosen, used


# --------------------------------------------------------------------------- rendering


@lru_cache(maxsize=4096)
def _compile(source: str, html: bool, extra_dir: str | None) -> Template:
    env = environment(extra_dir)
    if html:
        source = "{% autoescape true %}" + source + "{% endautoescape %}"
    return env.from_string(source)


def _render_str(
    where: str,
    source: Any,
    context: dict[str, Any],
    html: bool = False,
    extra_dir: str | None = None,
) -> str:
    if source is None:
        return ""
    if not isinstance(source, str):
        source = str(source)
    try:
        return _compile(source, html, extra_dir).render(context).strip()
    except SecurityError as exc:
        raise TemplateProblem(f"{where}: unsafe construct refused by the sandbox: {exc}") from None
    except TemplateError as exc:
        raise TemplateProblem(f"{where}: {exc.__class__.__name__}: {exc}") from None


class _TextExtractor(HTMLParser):
    BLOCK = {"p", "div", "br", "tr", "table", "ul", "ol", "h1", "h2", "h3", "h4", "li"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script", "head"):
            self.skip += 1
        elif tag in self.BLOCK:
            self.out.append("\n")
            if tag == "li":
                self.out.append("- ")
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag == "a":
            self.href = dict(attrs).get("href")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "head"):
            self.skip = max(0, self.skip - 1)
        elif tag in ("p", "div", "table", "h1", "h2", "h3", "h4"):
            self.out.append("\n")
        elif tag == "a" and self.href:
            self.out.append(f" ({self.href})")
            self.href = None

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(re.sub(r"\s+", " ", data))


def html_to_text(html: str) -> str:
    """A readable plain-text alternative of an HTML body (links kept as ``text (url)``)."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = [line.strip() for line in "".join(parser.out).splitlines()]
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines))
    return text.strip()


def zns_limit(param: str, declared_type: str | None, settings: Settings | None = None) -> int:
    """Max characters for a ZNS parameter: by name, declared type, or inferred type."""
    overrides = (settings or get_settings()).zns_param_limits
    limits = {**ZNS_TYPE_LIMITS, **overrides}
    if param in overrides:
        return overrides[param]
    kind = declared_type or next((k for hint, k in _TYPE_HINTS if hint in param.lower()), "default")
    return limits.get(kind, limits["default"])


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
    (missing variable, sandbox violation, syntax error, ZNS parameter too long).
    """
    settings = settings or get_settings()
    kind = channel
    sec, used = section(template_name, kind, locale, settings)
    ctx = {**context, "locale": used}
    extra = settings.templates_dir
    where = f"template {template_name!r} [{used}] {kind}"

    def r(fieldname: str, html: bool = False) -> str:
        return _render_str(f"{where}.{fieldname}", sec.get(fieldname), ctx, html, extra)

    out = Rendered(channel=kind, locale=used)
    if kind == "email":
        out.subject = " ".join(r("subject").split())
        out.html = r("html", html=True) or None
        out.text = r("text") if sec.get("text") else html_to_text(out.html or "")
        if not out.subject:
            raise TemplateProblem(f"{where}: subject is empty (add `subject:`)")
    elif kind in ("sms", "zalo_oa"):
        out.text = r("text")
        if kind == "zalo_oa" and len(out.text) > OA_TEXT_MAX:
            raise TemplateProblem(f"{where}.text: {len(out.text)} characters > {OA_TEXT_MAX}")
    elif kind == "zalo_zns":
        out.template_id = str(sec.get("template_id") or "")
        if not out.template_id:
            raise TemplateProblem(f"{where}: template_id is missing")
        params = sec.get("params") or {}
        if not isinstance(params, dict):
            raise TemplateProblem(f"{where}.params: must be a mapping name -> value")
        for pname, spec in params.items():
            declared = None
            source = spec
            if isinstance(spec, dict):
                source, declared = spec.get("value"), spec.get("type")
                if isinstance(spec.get("max"), int):
                    declared = None
            value = _render_str(f"{where}.params.{pname}", source, ctx, False, extra)
            limit = (
                spec["max"]
                if isinstance(spec, dict) and isinstance(spec.get("max"), int)
                else zns_limit(str(pname), declared, settings)
            )
            if len(value) > limit:
                raise TemplateProblem(
                    f"{where}.params.{pname}: {len(value)} characters > Zalo limit {limit} "
                    f"({value[:40]!r}...); shorten it or set its type/max"
                )
            out.params[str(pname)] = value
    elif kind == "messenger":
        out.text = r("text")
        out.tag = str(sec["tag"]) if sec.get("tag") else None
        for i, button in enumerate(sec.get("buttons") or []):
            if not isinstance(button, dict):
                raise TemplateProblem(f"{where}.buttons[{i}]: expected {{title, url}}")
            title = _render_str(
                f"{where}.buttons[{i}].title", button.get("title"), ctx, False, extra
            )
            url = _render_str(f"{where}.buttons[{i}].url", button.get("url"), ctx, False, extra)
            if len(title) > MESSENGER_BUTTON_TITLE_MAX:
                raise TemplateProblem(
                    f"{where}.buttons[{i}].title: {len(title)} characters > "
                    f"{MESSENGER_BUTTON_TITLE_MAX}"
                )
            out.buttons.append({"type": "web_url", "title": title, "url": url})
        if len(out.text) > MESSENGER_TEXT_MAX:
            raise TemplateProblem(
                f"{where}.text: {len(out.text)} characters > {MESSENGER_TEXT_MAX}"
            )
    else:
        raise TemplateProblem(f"unknown channel {channel!r}; use one of {', '.join(KINDS)}")
    if message_id is not None:
        rewrite_links(out, message_id, settings)
    return out


def zns_template_ids(settings: Settings | None = None) -> dict[str, str]:
    """Configured ZNS template ids: ZNS_TEMPLATE_FILE (YAML) overlaid by ZNS_TEMPLATE_IDS."""
    settings = settings or get_settings()
    mapping: dict[str, str] = {}
    if settings.zns_template_file:
        path = Path(settings.zns_template_file)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TemplateProblem(f"ZNS_TEMPLATE_FILE {path}: {exc}") from None
        if not isinstance(data, dict):
            raise TemplateProblem(f"ZNS_TEMPLATE_FILE {path}: expected `name: template_id` lines")
        mapping.update({str(k): str(v) for k, v in data.items()})
    mapping.update(settings.zns_template_ids)
    return mapping


def effective_zns_id(
    template_name: str, locale: str, shipped_id: str, settings: Settings | None = None
) -> str:
    """The id a ZNS send uses: ``name@locale`` or ``name`` override, else the shipped id."""
    mapping = zns_template_ids(settings)
    return mapping.get(f"{template_name}@{locale}") or mapping.get(template_name) or shipped_id


# --------------------------------------------------------------------------- links


def _strip_trailing(url: str) -> tuple[str, str]:
    trail = ""
    while url and url[-1] in ".,;:!?)]}":
        trail = url[-1] + trail
        url = url[:-1]
    return url, trail


def rewrite_links(out: Rendered, message_id: int, settings: Settings | None = None) -> None:
    """Replace http(s) links in email html/text and sms text with signed click URLs.

    The same target gets the same index in html and text; our own tracking and
    unsubscribe URLs are left alone. Targets are appended to ``out.links``.
    """
    settings = settings or get_settings()
    if out.channel not in ("email", "sms"):
        return
    index: dict[str, int] = {u: i for i, u in enumerate(out.links)}

    def tracked(url: str) -> str:
        if links.is_own_url(url, settings):
            return url
        if url not in index:
            index[url] = len(out.links)
            out.links.append(url)
        return links.tracking_url(message_id, index[url], settings)

    def in_text(match: re.Match[str]) -> str:
        url, trail = _strip_trailing(match.group(0))
        return tracked(url) + trail

    def in_href(match: re.Match[str]) -> str:
        url = unescape(match.group(3))
        new = tracked(url)
        return f"{match.group(1)}{match.group(2)}{html_escape(new)}{match.group(2)}"

    if out.html:
        out.html = HREF_RE.sub(in_href, out.html)
    out.text = URL_RE.sub(in_text, out.text)


def links_mapping(out: Rendered) -> dict[str, Any]:
    """``Message.links`` value for a rendering: ``{"0": url, "1": url, ...}``."""
    return {str(i): url for i, url in enumerate(out.links)}


# --------------------------------------------------------------------------- validation

SAMPLE_NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
SAMPLE_ITEMS = [
    {"sku": "AT-001", "name": "Áo thun cotton", "quantity": 2, "price": 250000},
    {"sku": "QJ-014", "name": "Quần jean ống suông", "quantity": 1, "price": 750000},
]
SAMPLE: dict[str, Any] = {
    "contact": {
        "id": 1,
        "first_name": "Lan",
        "last_name": "Nguyễn Thị",
        "full_name": "Nguyễn Thị Lan",
        "email": "lan.nguyen@example.vn",
        "phone": "+84912345678",
        "attributes": {"city": "Hà Nội", "gender": "female", "discount_code": "CHAOBAN10"},
        "tags": ["vip"],
        "orders_count": 3,
        "total_spent": 3750000,
        "timezone": "Asia/Ho_Chi_Minh",
        "locale": "vi",
    },
    "order": {
        "order_id": "5001",
        "order_number": "#1001",
        "total": 1250000,
        "currency": "VND",
        "status": "paid",
        "items": SAMPLE_ITEMS,
        "checkout_token": "ck_123",
        "tracking_url": "https://ghn.vn/tracking?code=GHN123456",
        "tracking_number": "GHN123456",
        "carrier": "GHN",
        "created_at": "2026-11-02T10:00:00+07:00",
    },
    "cart": {
        "cart_id": "c_77",
        "total": 1250000,
        "items": SAMPLE_ITEMS,
        "recovery_url": "https://shop.example.vn/cart/recover/c_77",
    },
    "shop": {"name": "Cửa hàng Mẫu", "url": "https://shop.example.vn"},
    "unsubscribe_url": "https://shop.example.vn/u/sample",
    "now": SAMPLE_NOW,
    "timezone": "Asia/Ho_Chi_Minh",
}
SAMPLE["event"] = {**SAMPLE["order"], **SAMPLE["cart"], "form": "popup", "source": "website"}


def sample_context(settings: Settings | None = None) -> dict[str, Any]:
    """A copy of SAMPLE (a Vietnamese contact, an order and a cart) for previews and checks."""
    import copy

    ctx = copy.deepcopy(SAMPLE)
    ctx["unsubscribe_url"] = links.unsubscribe_url(0, settings)
    return ctx


def validate_template(
    name: str, settings: Settings | None = None, *, purpose: str | None = None
) -> list[str]:
    """Render every section and locale of ``name`` against SAMPLE; return the problems found.

    Rejects missing variables (strict undefined), sandbox violations, syntax errors,
    ZNS parameters over Zalo's limits and SMS longer than SMS_MAX_SEGMENTS parts
    (with the marketing label and opt-out counted when ``purpose == "marketing"``).
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
                    from automation.delivery.policy import decorate_sms

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
