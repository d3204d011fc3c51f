"""Compliance decorations of advertising messages (Decree 91/2020/ND-CP profile).

The ``[QC]`` label first in an SMS text or e-mail subject, the SMS opt-out
instruction last, and an unsubscribe footer in e-mails. Which of them apply comes
from the compliance profile (COMPLIANCE_PROFILE, AD_LABEL, SMS_OPTOUT_TEXT).

The SMS opt-out is written without diacritics (SMS_OPTOUT_TEXT) while the text fits
GSM-7, and with them (SMS_OPTOUT_TEXT_UCS2) only when the text is UCS-2 anyway: one
accented letter turns a 160-character SMS into 70-character parts.
"""

from __future__ import annotations

from html import escape
from typing import Any

from jinja2 import TemplateSyntaxError, meta

from automation.core.config import Settings, get_settings
from automation.delivery.policy import profile_from_settings
from automation.messages.sandbox import environment
from channels.segments import is_gsm7

EMAIL_FOOTER = {
    "vi": ("Bạn nhận được email này vì đã đồng ý nhận tin từ {shop}. Hủy đăng ký: {url}"),
    "en": "You receive this e-mail because you agreed to hear from {shop}. Unsubscribe: {url}",
}
EMAIL_FOOTER_HTML = {
    "vi": (
        '<p style="font-size:12px;color:#777">Bạn nhận được email này vì đã đồng ý nhận tin '
        'từ {shop}. <a href="{url}">Hủy đăng ký</a></p>'
    ),
    "en": (
        '<p style="font-size:12px;color:#777">You receive this e-mail because you agreed to '
        'hear from {shop}. <a href="{url}">Unsubscribe</a></p>'
    ),
}


def label(text: str, ad_label: str | None) -> str:
    """``[QC] text`` unless the text already starts with the label."""
    if not ad_label or text.lstrip().startswith(ad_label):
        return text
    return f"{ad_label} {text.lstrip()}"


def decorate_sms(
    text: str, unsubscribe: str, settings: Settings | None = None, brandname: str | None = None
) -> str:
    """Advertising SMS: label first, opt-out instruction last (Decree 91 profile).

    ``brandname`` is the sender name the SMS provider shows (default: the shop's name).
    """
    settings = settings or get_settings()
    profile = profile_from_settings(settings)
    out = label(text, profile.ad_label)
    if profile.sms_optout:
        wording = profile.sms_optout
        if settings.sms_optout_text_ucs2 and not is_gsm7(out):
            wording = settings.sms_optout_text_ucs2
        optout = wording.format(
            unsubscribe_url=unsubscribe,
            shop=settings.shop_name,
            brandname=brandname or settings.shop_name,
        )
        if not out.rstrip().endswith(optout):
            out = f"{out.rstrip()} {optout}"
    return out


#: Template variables that differ per recipient (an SMS using them can never be pooled).
PERSONAL_VARIABLES = frozenset(
    {"contact", "event", "order", "cart", "enrollment", "unsubscribe_url"}
)


def personal_variables(sources: Any) -> set[str]:
    """The per-recipient variables used by the template text(s) in ``sources`` (nested)."""
    if isinstance(sources, dict):
        return set().union(*(personal_variables(v) for v in sources.values()), set())
    if isinstance(sources, list):
        return set().union(*(personal_variables(v) for v in sources), set())
    if not isinstance(sources, str) or "{" not in sources:
        return set()
    try:
        names = meta.find_undeclared_variables(environment().parse(sources))
    except TemplateSyntaxError:
        return set()  # reported by template validation
    return set(names) & PERSONAL_VARIABLES


def decorate_email(
    subject: str,
    html: str | None,
    text: str,
    unsubscribe: str,
    locale: str,
    settings: Settings | None = None,
) -> tuple[str, str | None, str]:
    """Advertising e-mail: label first in the subject, unsubscribe footer last (if missing)."""
    settings = settings or get_settings()
    profile = profile_from_settings(settings)
    subject = label(subject, profile.ad_label)
    if profile.email_footer:
        lang = "en" if locale == "en" else "vi"
        values: dict[str, Any] = {"shop": escape(settings.shop_name), "url": escape(unsubscribe)}
        if html is not None and unsubscribe not in html:
            footer = EMAIL_FOOTER_HTML[lang].format(**values)
            html = (
                html.replace("</body>", footer + "</body>")
                if "</body>" in html
                else (html + "\n" + footer)
            )
        if unsubscribe not in text:
            plain = EMAIL_FOOTER[lang].format(shop=settings.shop_name, url=unsubscribe)
            text = text.rstrip() + "\n\n-- \n" + plain
    return subject, html, text
