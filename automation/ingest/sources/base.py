"""The tiny base every shop source implements, plus helpers for money, times and phones."""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, ClassVar

from babel.numbers import get_currency_precision

from automation.contacts.identity import AddressError, normalize_email, normalize_phone
from automation.core.clock import ensure_utc, now
from automation.core.events import CanonicalEvent

MAX_ID_LENGTH = 128  # orders.external_id, carts.external_id, contact_identities.external_id
MAX_MINOR_UNITS = 10**15  # 10^15 dong: far above any order, far below BIGINT sums


class PayloadError(ValueError):
    """A payload field is missing or malformed (HTTP 422 naming `field`)."""

    def __init__(self, field: str, message: str, fix: str | None = None) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.fix = fix


class Ignored(Exception):  # noqa: N818 - a signal, not an error
    """The payload is valid but carries nothing we act on (answered 202, ignored)."""


class Source(ABC):
    """One platform: header names, the secret setting, and parse(topic, payload).

    `refuse_invalid`: a payload that fails parse() is refused with 422 (the sender can fix
    and resend: our native format). False for shop platforms, which cannot fix a payload
    and drop or disable a webhook that keeps failing: their deliveries are quarantined.
    """

    name: ClassVar[str]
    refuse_invalid: ClassVar[bool] = False
    batched: ClassVar[bool] = False
    secret_setting: ClassVar[str]
    signature_header: ClassVar[str]
    topic_header: ClassVar[str | None] = None
    delivery_header: ClassVar[str | None] = None

    @abstractmethod
    def handles(self, topic: str) -> bool:
        """True when this source maps the topic to canonical events."""

    @abstractmethod
    def parse(self, topic: str, payload: Any) -> list[CanonicalEvent]:
        """Turn a decoded payload into canonical events; PayloadError names a bad field."""


def obj(value: Any, field: str) -> dict[str, Any]:
    """The value as a JSON object, or PayloadError naming the field."""
    if not isinstance(value, dict):
        raise PayloadError(field, "must be a JSON object", "send the resource object as the body")
    return value


def require(data: dict[str, Any], key: str, field: str) -> Any:
    """data[key], or PayloadError when it is missing or null."""
    value = data.get(key)
    if value is None or value == "":
        raise PayloadError(field, "is required", f"include `{key}` in the payload")
    return value


def ident(value: Any, field: str) -> str:
    """An id (int or string) as a string."""
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
        raise PayloadError(field, "must be an id (integer or string)")
    result = str(value).strip()
    if len(result) > MAX_ID_LENGTH:
        raise PayloadError(field, f"is longer than {MAX_ID_LENGTH} characters")
    return result


def minor_units(value: Any, currency: str, field: str) -> int:
    """A decimal amount ("199.00", 199, 1.5) as integer minor units of the currency.

    VND has no minor unit, so "199000.00" VND -> 199000; "409.94" USD -> 40994.
    """
    if value is None or value == "":
        return 0
    if isinstance(value, bool):
        raise PayloadError(field, "must be a decimal amount like \"199000.00\"")
    try:
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        raise PayloadError(field, "must be a decimal amount like \"199000.00\"") from None
    if not amount.is_finite():
        raise PayloadError(field, "must be a finite decimal amount")
    if amount.adjusted() > 20:  # "1e25", "1e999999": refused before any arithmetic
        raise beyond(field)
    try:
        digits = get_currency_precision(currency.upper())
    except Exception:  # noqa: BLE001 - unknown code: assume two decimals
        digits = 2
    scaled = int((amount * (Decimal(10) ** digits)).quantize(Decimal(1), rounding=ROUND_HALF_UP))
    if abs(scaled) > MAX_MINOR_UNITS:
        raise beyond(field)
    return scaled


def beyond(field: str) -> PayloadError:
    """The error for an amount that would not fit our integer columns."""
    return PayloadError(field, f"is beyond {MAX_MINOR_UNITS} minor units", "check the amount")


def currency_code(value: Any, field: str, default: str = "VND") -> str:
    """A three-letter ISO 4217 code, upper-cased."""
    if value is None or value == "":
        return default
    if not isinstance(value, str) or len(value.strip()) != 3 or not value.strip().isalpha():
        raise PayloadError(field, "must be a 3-letter currency code such as VND")
    return value.strip().upper()


def timestamp(value: Any, field: str, assume_utc: bool = True) -> datetime:
    """An ISO 8601 time as aware UTC; None/blank means now()."""
    if value is None or value == "":
        return now()
    if not isinstance(value, str):
        raise PayloadError(field, "must be an ISO 8601 time like 2026-01-31T10:00:00+07:00")
    text = value.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(field, "must be an ISO 8601 time like 2026-01-31T10:00:00+07:00") from (
            None
        )
    return ensure_utc(parsed)


def clean_email(value: Any) -> str | None:
    """A normalised email, or None when absent or unusable (shop payloads are lenient)."""
    if not isinstance(value, str):
        return None
    try:
        return normalize_email(value)
    except AddressError:
        return None


def clean_phone(value: Any, region: str | None = None) -> str | None:
    """An E.164 phone using the address's country (default VN), or None when unusable."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    try:
        return normalize_phone(str(value), (region or "VN").upper())
    except AddressError:
        return None


def text(value: Any) -> str | None:
    """A non-empty trimmed string or None."""
    if value is None:
        return None
    result = str(value).strip()
    return result or None


def line_items(value: Any, currency: str) -> list[dict[str, Any]]:
    """[{sku, name, quantity, price}] with price in minor units."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError("line_items", "must be a list")
    items = []
    for index, raw in enumerate(value):
        item = obj(raw, f"line_items[{index}]")
        quantity = item.get("quantity", 1)
        if not isinstance(quantity, int) or isinstance(quantity, bool):
            raise PayloadError(f"line_items[{index}].quantity", "must be an integer")
        items.append(
            {
                "sku": text(item.get("sku")),
                "name": text(item.get("name")) or text(item.get("title")),
                "quantity": quantity,
                "price": minor_units(item.get("price"), currency, f"line_items[{index}].price"),
            }
        )
    return items
