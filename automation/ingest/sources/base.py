"""The tiny base every shop source implements, plus helpers for money, times and phones.

A source maps one delivery (headers + decoded body) to canonical events: `map()` reads
the topic, the platform's event id and the shop from the headers (`delivery()`), calls
`parse()` on the body and stamps each event's dedupe key. Every value a mapping returns
fits its column: ids over MAX_ID characters and amounts over MAX_MINOR_UNITS raise a
PayloadError naming the field; names are cut to MAX_NAME characters.
"""

from __future__ import annotations

import functools
import hashlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from babel.numbers import get_currency_precision

from automation.contacts.identity import AddressError, normalize_email, normalize_phone
from automation.core.clock import ensure_utc, now
from automation.core.config import get_settings
from automation.core.errors import InputError
from automation.core.events import CanonicalEvent

MAX_ID = 128  # orders.external_id, carts.external_id, contact_identities.external_id
MAX_KEY = 200  # events.source_event_id: longer keys are hashed
MAX_NAME = 120  # contacts.first_name / last_name
MAX_EMAIL = 320  # contacts.email
# Amounts in minor units: 10^15 (a million billion dong) is far beyond any real order and
# keeps a contact's summed total_spent inside BIGINT (2^63 - 1) for 9,000 such orders.
MAX_MINOR_UNITS = 10**15
MAX_QUANTITY = 1_000_000
#: Event times before this are refused (a missing or default date, not a real event).
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
Headers = Mapping[str, str]


class PayloadError(InputError):
    """A payload field is missing or malformed (HTTP 422 naming `field`)."""

    def __init__(self, field: str, message: str, fix: str | None = None) -> None:
        super().__init__(message, where=field, fix=fix or "")
        self.field = field


class Ignored(Exception):  # noqa: N818 - a signal, not an error
    """The payload is valid but carries nothing we act on (answered 202, ignored)."""


@dataclass(frozen=True)
class Delivery:
    """What a delivery's headers say: topic, the platform's event id, the shop, a test flag."""

    topic: str
    key: str | None = None  # equal across redeliveries of one event; None: keys from the body
    shop: str | None = None  # shop domain / org id / tenant the delivery came from
    test: bool = False


class Source(ABC):
    """One platform: header names, the secret setting, and parse(topic, payload).

    The single-name class variables are what the HTTP layer reads today; the tuples list
    every accepted spelling, best first (Shopify's newer deliveries drop the `X-` prefix).

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
    signature_headers: ClassVar[tuple[str, ...]] = ()
    topic_headers: ClassVar[tuple[str, ...]] = ()
    key_headers: ClassVar[tuple[str, ...]] = ()  # platform event ids, stable across retries
    shop_headers: ClassVar[tuple[str, ...]] = ()
    test_headers: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def handles(self, topic: str) -> bool:
        """True when this source maps the topic to canonical events."""

    @abstractmethod
    def parse(self, topic: str, payload: Any) -> list[CanonicalEvent]:
        """Turn a decoded payload into canonical events; PayloadError names a bad field."""

    def signature(self, headers: Headers) -> str | None:
        """The signature header's value, under any accepted spelling."""
        return header(headers, *(self.signature_headers or (self.signature_header,)))

    def delivery(self, headers: Headers) -> Delivery:
        """Topic, event id, shop and test flag from the request headers."""
        topics = self.topic_headers or ((self.topic_header,) if self.topic_header else ())
        keys = self.key_headers or ((self.delivery_header,) if self.delivery_header else ())
        test = (header(headers, *self.test_headers) or "").lower() in ("true", "1", "yes")
        return Delivery(
            topic=header(headers, *topics) or "",
            key=header(headers, *keys),
            shop=text(header(headers, *self.shop_headers), MAX_ID),
            test=test,
        )

    def map(
        self, headers: Headers, payload: Any, topic: str | None = None
    ) -> list[CanonicalEvent]:
        """One delivery -> canonical events with their dedupe keys; Ignored for test pings.

        ``topic`` overrides the topic header (a stored delivery keeps its topic apart).
        """
        delivery = self.delivery(headers)
        if delivery.test:
            raise Ignored("test delivery")
        events = self.parse(topic if topic is not None else delivery.topic, payload)
        for index, event in enumerate(events):
            key = event.source_event_id
            if delivery.key:
                key = delivery.key if len(events) == 1 else f"{delivery.key}:{index}"
            event.source_event_id = stable_key(key)
            if delivery.shop:
                event.properties.setdefault("shop", delivery.shop)
        return events


class LoweredHeaders(dict[str, str]):
    """Headers whose names are already lower-case (built once per request by `lowered`)."""


def lowered(headers: Headers) -> LoweredHeaders:
    """The headers with lower-case names; returned as is when they already are."""
    if isinstance(headers, LoweredHeaders):
        return headers
    return LoweredHeaders((key.lower(), value) for key, value in headers.items())


def raw_lowered(raw: Iterable[tuple[bytes, bytes]]) -> LoweredHeaders:
    """LoweredHeaders from an ASGI scope's raw header pairs (Latin-1, as Starlette reads
    them; a repeated name keeps its last value), without building Starlette's Headers."""
    return LoweredHeaders(
        (name.decode("latin-1").lower(), value.decode("latin-1")) for name, value in raw
    )


def header(headers: Headers, *names: str) -> str | None:
    """The first non-blank value among the header names (case-insensitive), trimmed."""
    found = lowered(headers)
    for name in names:
        value = found.get(name.lower(), "").strip()
        if value:
            return value
    return None


def stable_key(value: str) -> str:
    """A source_event_id that fits its column (keys over MAX_KEY characters are hashed)."""
    if len(value) <= MAX_KEY:
        return value
    return "sha256:" + hashlib.sha256(value.encode()).hexdigest()


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
    """An id (int or string) of at most MAX_ID characters, as a string."""
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value).strip() == "":
        raise PayloadError(field, "must be an id (integer or string)")
    result = str(value).strip()
    if len(result) > MAX_ID:
        raise PayloadError(field, f"is {len(result)} characters; ids have at most {MAX_ID}")
    return result


def optional_ident(value: Any, field: str) -> str | None:
    """ident() for an id that may be absent (None, blank or 0 mean none)."""
    if value is None or value == "" or value == 0 or value == "0":
        return None
    return ident(value, field)


@functools.lru_cache(maxsize=512)
def currency_digits(code: str) -> int:
    """Minor-unit digits of an ISO 4217 code from Babel (cached: the lookup is slow);
    an unknown code counts two."""
    try:
        return int(get_currency_precision(code))
    except Exception:  # noqa: BLE001 - unknown code: assume two decimals
        return 2


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
    digits = currency_digits(currency.upper())
    # Compared before any arithmetic: scaling 1e999999999 overflows, quantize fails past
    # 28 digits, and BIGINT columns end at 2^63 - 1 (then the worker would fail for ever).
    if amount.copy_abs() > Decimal(MAX_MINOR_UNITS).scaleb(-digits):
        fix = f"amounts are at most {MAX_MINOR_UNITS:.0e} minor units"
        raise PayloadError(field, f"{str(value)[:40]} is out of range", fix)
    return int(amount.scaleb(digits).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def currency_code(value: Any, field: str, default: str = "VND") -> str:
    """A three-letter ISO 4217 code, upper-cased."""
    if value is None or value == "":
        return default
    if not isinstance(value, str) or len(value.strip()) != 3 or not value.strip().isalpha():
        raise PayloadError(field, "must be a 3-letter currency code such as VND")
    return value.strip().upper()


def timestamp(value: Any, field: str, assume_utc: bool = False) -> datetime:
    """An ISO 8601 time as aware UTC, within ``plausible_time``; None/blank means now().

    A time without an offset is read in DEFAULT_TIMEZONE (UTC when ``assume_utc``).
    """
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
    return plausible_time(parsed, field, assume_utc)


def plausible_time(value: datetime, field: str, assume_utc: bool = False) -> datetime:
    """``value`` as aware UTC (naive: DEFAULT_TIMEZONE, or UTC when ``assume_utc``), or a
    PayloadError unless it lies between EARLIEST_TIME and now + 1 day."""
    if value.tzinfo is None and not assume_utc:
        value = value.replace(tzinfo=ZoneInfo(get_settings().default_timezone))
    latest = now() + timedelta(days=1)
    try:
        value = ensure_utc(value)
    except OverflowError:  # 0001-01-01 with a positive offset
        value = EARLIEST_TIME - timedelta(days=1)
    if not EARLIEST_TIME <= value <= latest:
        raise PayloadError(
            field,
            f"must be between {EARLIEST_TIME.date()} and {latest.date()} (now + 1 day)",
            "send the time the event happened, with its UTC offset",
        )
    return value


def clean_email(value: Any) -> str | None:
    """A normalised email, or None when absent, unusable or longer than its column."""
    if not isinstance(value, str):
        return None
    try:
        email = normalize_email(value)
    except AddressError:
        return None
    return email if email and len(email) <= MAX_EMAIL else None


def clean_phone(value: Any, region: str | None = None) -> str | None:
    """An E.164 phone using the address's country (default VN), or None when unusable."""
    if not isinstance(value, str | int) or isinstance(value, bool):
        return None
    try:
        return normalize_phone(str(value), (region or "VN").upper())
    except AddressError:
        return None


def text(value: Any, limit: int | None = None) -> str | None:
    """A non-empty trimmed string (cut to `limit` characters) or None."""
    if value is None:
        return None
    result = str(value).strip()[:limit].strip()
    return result or None


def person_name(value: Any) -> str | None:
    """A first or last name that fits its column (longer names are cut, not refused)."""
    return text(value, MAX_NAME)


def split_name(full: Any) -> tuple[str | None, str | None]:
    """Vietnamese "Họ Đệm Tên" -> (first_name "Tên", last_name "Họ Đệm")."""
    words = (text(full) or "").split()
    if not words:
        return None, None
    return person_name(words[-1]), person_name(" ".join(words[:-1]))


def line_items(value: Any, currency: str, field: str = "line_items") -> list[dict[str, Any]]:
    """[{sku, name, quantity, price}] with price in minor units."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(field, "must be a list")
    items = []
    for index, raw in enumerate(value):
        item = obj(raw, f"{field}[{index}]")
        items.append(
            {
                "sku": text(item.get("sku"), MAX_ID),
                "name": text(item.get("name"), 500) or text(item.get("title"), 500),
                "quantity": quantity(item.get("quantity", 1), f"{field}[{index}].quantity"),
                "price": minor_units(item.get("price"), currency, f"{field}[{index}].price"),
            }
        )
    return items


def quantity(value: Any, field: str) -> int:
    """A whole quantity from 0 to MAX_QUANTITY (2 and 2.0 both read as 2)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise PayloadError(field, "must be an integer")
    if not 0 <= value <= MAX_QUANTITY:
        raise PayloadError(field, f"must be between 0 and {MAX_QUANTITY}")
    return value
