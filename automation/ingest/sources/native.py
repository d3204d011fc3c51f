"""Our native JSON format: one event, or {"events": [...]} with up to 1000 events.

Schema (pydantic, published in /openapi.json):

    {"id": "evt_123", "type": "order.paid", "occurred_at": "2026-01-31T10:00:00+07:00",
     "contact": {"external_id": "u42", "email": "an@example.vn", "phone": "0912345678",
                 "consent": {"email": {"marketing": true}}},
     "properties": {"order_id": "1001", "total": 1250000, "currency": "VND"}}

Money is an integer in the currency's smallest unit (VND: dong). Addresses are
validated strictly here (a bad email is a 422), unlike platform payloads.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from automation.contacts.identity import AddressError, normalize_email, normalize_phone
from automation.core import events as ev
from automation.core.clock import ensure_utc
from automation.core.events import CanonicalEvent, ContactData
from automation.ingest.sources.base import (
    MAX_MINOR_UNITS,
    PayloadError,
    Source,
    plausible_time,
)

MAX_BATCH = 1000
EventType = Literal[
    "lead.captured",
    "contact.updated",
    "checkout.started",
    "cart.updated",
    "order.created",
    "order.paid",
    "order.shipped",
    "order.delivered",
    "order.cancelled",
    "order.refunded",
]
ConsentChannel = Literal["email", "sms", "zalo", "messenger"]
Money = Annotated[
    int,
    Field(ge=0, le=MAX_MINOR_UNITS, description="integer, smallest currency unit (VND: dong)"),
]


class ConsentIn(BaseModel):
    """Consent per purpose: true granted, false withdrawn, absent unchanged."""

    model_config = ConfigDict(extra="forbid")
    marketing: bool | None = None
    transactional: bool | None = None


class ContactIn(BaseModel):
    """Who the event is about; at least one of external_id, email, phone, zalo, psid."""

    model_config = ConfigDict(extra="forbid")
    external_id: str | None = Field(None, max_length=128)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=32)
    zalo_user_id: str | None = Field(None, max_length=64)
    facebook_psid: str | None = Field(None, max_length=64)
    first_name: str | None = Field(None, max_length=120)
    last_name: str | None = Field(None, max_length=120)
    locale: str | None = Field(None, max_length=16)
    timezone: str | None = Field(None, max_length=64)
    attributes: dict[str, Any] = Field(default_factory=dict)
    consent: dict[ConsentChannel, ConsentIn] = Field(default_factory=dict)
    consent_method: str | None = Field(
        None, max_length=64, description="how consent was given: web_form, double_opt_in, ..."
    )
    consent_form: str | None = Field(
        None, max_length=2000, description="the consent form's text or a reference to it"
    )

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        try:
            return normalize_email(value)
        except AddressError:
            raise ValueError("not an email address") from None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        try:
            return normalize_phone(value)
        except AddressError:
            raise ValueError("not a valid phone number (e.g. 0912345678 or +84912345678)") from None

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("unknown IANA timezone, e.g. Asia/Ho_Chi_Minh") from None
        return value

    @model_validator(mode="after")
    def _identified(self) -> ContactIn:
        if not any(
            (self.external_id, self.email, self.phone, self.zalo_user_id, self.facebook_psid)
        ):
            raise ValueError(
                "give at least one of external_id, email, phone, zalo_user_id, facebook_psid"
            )
        return self


class ItemIn(BaseModel):
    """One line of an order or cart."""

    model_config = ConfigDict(extra="allow")
    sku: str | None = None
    name: str | None = None
    quantity: int = Field(1, ge=0)
    price: Money = 0


class OrderProperties(BaseModel):
    """Properties of order.* events (extra keys are kept)."""

    model_config = ConfigDict(extra="allow")
    order_id: str = Field(min_length=1, max_length=128)
    order_number: str | None = None
    total: Money | None = None
    currency: str = Field("VND", min_length=3, max_length=3)
    status: str | None = None
    items: list[ItemIn] = Field(default_factory=list)
    checkout_token: str | None = None
    placed_at: datetime | None = None
    refund_amount: Money | None = Field(None, description="order.refunded: partial refund")
    tracking_url: str | None = None
    tracking_number: str | None = None
    carrier: str | None = None


class CartProperties(BaseModel):
    """Properties of checkout.started / cart.updated."""

    model_config = ConfigDict(extra="allow")
    cart_id: str = Field(min_length=1, max_length=128)
    total: Money = 0
    currency: str = Field("VND", min_length=3, max_length=3)
    items: list[ItemIn] = Field(default_factory=list)
    recovery_url: str | None = None


class LeadProperties(BaseModel):
    """Properties of lead.captured: the form, plus anything."""

    model_config = ConfigDict(extra="allow")
    form: str | None = None


class NativeEvent(BaseModel):
    """One event in our native format."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=200, description="your stable id: dedupe key")
    type: EventType
    occurred_at: datetime = Field(
        description="ISO 8601 with offset; naive times are read in DEFAULT_TIMEZONE; "
        "2000-01-01 to now + 1 day"
    )
    contact: ContactIn
    properties: dict[str, Any] = Field(default_factory=dict)



class NativeBatch(BaseModel):
    """A batch: {"events": [...]} with 1 to 1000 events."""

    model_config = ConfigDict(extra="forbid")
    events: list[NativeEvent] = Field(min_length=1, max_length=MAX_BATCH)


class NativeSource(Source):
    """POST /webhooks/events."""

    name: ClassVar[str] = "native"
    refuse_invalid: ClassVar[bool] = True
    batched: ClassVar[bool] = True
    secret_setting: ClassVar[str] = "EVENTS_WEBHOOK_SECRET"
    signature_header: ClassVar[str] = "X-Signature"

    def handles(self, topic: str) -> bool:
        """The native endpoint has no topic header; the type is in each event."""
        return True

    def parse(self, topic: str, payload: Any) -> list[CanonicalEvent]:
        """Validate a single event or a batch and convert to canonical events."""
        try:
            if isinstance(payload, dict) and "events" in payload:
                items = NativeBatch.model_validate(payload).events
            else:
                items = [NativeEvent.model_validate(payload)]
        except ValidationError as exc:
            raise first_error(exc) from None
        prefix = "events" if isinstance(payload, dict) and "events" in payload else ""
        seen: set[str] = set()
        for index, item in enumerate(items):
            where = f"{prefix}[{index}]." if prefix else ""
            if item.id in seen:
                raise PayloadError(f"{where}id", f"duplicate id {item.id!r} in batch")
            seen.add(item.id)
            item.occurred_at = plausible_time(item.occurred_at, f"{where}occurred_at")
            model = PROPERTY_MODELS.get(item.type)
            if model is not None:
                try:
                    checked = model.model_validate(item.properties)
                except ValidationError as exc:
                    raise first_error(exc, f"{where}properties") from None
                item.properties = checked.model_dump(mode="json", exclude_none=True)
        return [canonical(item) for item in items]


PROPERTY_MODELS: dict[str, type[BaseModel]] = {
    **{name: OrderProperties for name in ev.ORDER_EVENTS},
    **{name: CartProperties for name in ev.CART_EVENTS},
    ev.LEAD_CAPTURED: LeadProperties,
}


def lead_form(item: NativeEvent) -> str | None:
    """The form a lead.captured names (``properties.form``): a reference to its consent text."""
    form = item.properties.get("form") if item.type == ev.LEAD_CAPTURED else None
    return f"form {form}" if isinstance(form, str) and form else None


def canonical(item: NativeEvent) -> CanonicalEvent:
    """A validated native event as a CanonicalEvent."""
    c = item.contact
    consents: dict[tuple[str, str], bool] = {}
    for channel, block in c.consent.items():
        pairs = (("marketing", block.marketing), ("transactional", block.transactional))
        for purpose, value in pairs:
            if value is not None:
                consents[(channel, purpose)] = value
    contact = ContactData(
        external_id=c.external_id,
        email=c.email,
        phone=c.phone,
        zalo_user_id=c.zalo_user_id,
        facebook_psid=c.facebook_psid,
        first_name=c.first_name,
        last_name=c.last_name,
        locale=c.locale,
        timezone=c.timezone,
        attributes=dict(c.attributes),
        consents=consents,
        consent_method=c.consent_method,
        consent_form=c.consent_form or lead_form(item),
        consent_at=ensure_utc(item.occurred_at),
    )
    return CanonicalEvent(
        type=item.type,
        source_event_id=item.id,
        occurred_at=item.occurred_at,
        contact=contact,
        properties=item.properties,
    )


def first_error(exc: ValidationError, prefix: str = "") -> PayloadError:
    """The first pydantic error as a PayloadError with a path like events[3].contact.email."""
    error = exc.errors()[0]
    path = prefix
    for part in error["loc"]:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part in ("function-after", "function-before") or "[" in str(part):
            continue
        else:
            path += f".{part}" if path else str(part)
    message = str(error["msg"]).removeprefix("Value error, ")
    return PayloadError(path or "body", message, "see the native format in the README")
