"""Template filters: ``vnd`` money, ``vn_date`` dates in the contact's zone, ``first_name_or``,
``unaccent`` (Vietnamese without diacritics: an SMS stays GSM-7, 160 characters a part)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_date, format_datetime
from jinja2 import pass_context
from jinja2.runtime import Context

from automation.core.config import get_settings


def vnd(value: Any) -> str:
    """``1250000`` -> ``1.250.000 ₫``: Babel's vi_VN currency format (``#,##0 ¤``, "." groups;
    VND has no minor unit), written out: Babel's pattern machinery cost 5% of a send."""
    try:
        amount = int(value)
    except (TypeError, ValueError):
        return str(value)
    return f"{amount:,} ₫".replace(",", ".")


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


def unaccent(value: Any) -> str:
    """``Cửa hàng Đà Lạt`` -> ``Cua hang Da Lat`` (diacritics dropped, đ/Đ -> d/D)."""
    text = str(value).replace("đ", "d").replace("Đ", "D")
    decomposed = unicodedata.normalize("NFD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


FILTERS = {
    "vnd": vnd,
    "vn_date": vn_date,
    "first_name_or": first_name_or,
    "unaccent": unaccent,
}
