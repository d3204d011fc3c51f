"""Phone-number spellings the providers want, from our E.164 form.

Numbers arrive normalised to E.164 (``+84912345678``) by the domain layer; a
national Vietnamese spelling (``0912345678``) is accepted too.
"""

from __future__ import annotations

from channels.errors import PermanentError

VN_PREFIX = "84"


def msisdn(number: str) -> str:
    """International digits without ``+`` (``84912345678``), as Zalo ZNS wants."""
    raw = "".join(ch for ch in number if ch not in " .-()")
    if raw.startswith("+"):
        digits = raw[1:]
    elif raw.startswith("0") and not raw.startswith("00"):
        digits = VN_PREFIX + raw[1:]
    elif raw.startswith("00"):
        digits = raw[2:]
    else:
        digits = raw
    if not digits.isdigit() or not 8 <= len(digits) <= 15:
        raise PermanentError(f"invalid phone number {number!r}", code="bad_phone")
    return digits


def vn_national(number: str) -> str:
    """National spelling for Vietnamese numbers (``0912345678``), else MSISDN digits."""
    digits = msisdn(number)
    if digits.startswith(VN_PREFIX):
        return "0" + digits[len(VN_PREFIX) :]
    return digits
