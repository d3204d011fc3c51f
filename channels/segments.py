"""SMS segment counting (GSM 03.38 7-bit vs UCS-2).

* GSM-7: 160 septets in a single SMS, 153 per part when concatenated; the
  extension-table characters (``^{}\\[~]|€`` and form feed) cost two septets
  (escape + char) and are never split across parts.
* UCS-2: used as soon as one character is outside GSM-7 (Vietnamese
  diacritics, emoji); 70 UTF-16 code units single, 67 per part; a surrogate
  pair (emoji) is never split across parts.
"""

from __future__ import annotations

from dataclasses import dataclass

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")

GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67


@dataclass(frozen=True)
class SegmentCount:
    """Encoding (``"gsm7"`` or ``"ucs2"``), total units and number of SMS parts."""

    encoding: str
    units: int
    segments: int


def is_gsm7(text: str) -> bool:
    """True when every character fits the GSM-7 basic or extension table."""
    return all(ch in GSM7_BASIC or ch in GSM7_EXTENSION for ch in text)


def _unit_widths(text: str, gsm7: bool) -> list[int]:
    if gsm7:
        return [2 if ch in GSM7_EXTENSION else 1 for ch in text]
    return [len(ch.encode("utf-16-le")) // 2 for ch in text]


def _pack(widths: list[int], per_part: int) -> int:
    parts, used = 1, 0
    for width in widths:
        if used + width > per_part:
            parts, used = parts + 1, 0
        used += width
    return parts


def count_segments(text: str) -> SegmentCount:
    """Count the SMS parts ``text`` costs (an empty message still costs one)."""
    gsm7 = is_gsm7(text)
    widths = _unit_widths(text, gsm7)
    units = sum(widths)
    single, per_part = (GSM7_SINGLE, GSM7_PART) if gsm7 else (UCS2_SINGLE, UCS2_PART)
    segments = 1 if units <= single else _pack(widths, per_part)
    return SegmentCount("gsm7" if gsm7 else "ucs2", units, segments)
