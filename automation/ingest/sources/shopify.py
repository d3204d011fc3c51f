"""Shopify, Haravan and Sapo Web: one payload family, different header names.

Haravan and Sapo Web (the former Bizweb) copied Shopify's webhook design (topics,
resource JSON, base64 HMAC of the raw body), so one parser serves all three; the
subclasses name their headers (Haravan in haravan.py, Sapo in sapo.py).

Shopify's dedupe key is X-Shopify-Event-Id (the same on every duplicate delivery of an
event), else X-Shopify-Webhook-Id; the newer Events deliveries send the same headers
without the `X-` prefix (Shopify-Hmac-Sha256, Shopify-Topic, Shopify-Webhook-Id, ...).
"""

from __future__ import annotations

from typing import Any, ClassVar

from automation.core import events as ev
from automation.core.events import CanonicalEvent, ContactData
from automation.ingest.sources.base import (
    MAX_ID,
    MAX_MINOR_UNITS,
    Ignored,
    PayloadError,
    Source,
    clean_email,
    clean_phone,
    currency_code,
    ident,
    line_items,
    minor_units,
    obj,
    optional_ident,
    person_name,
    require,
    text,
    timestamp,
)

ORDER_TOPICS = {
    "orders/create": ev.ORDER_CREATED,
    "orders/paid": ev.ORDER_PAID,
    "orders/fulfilled": ev.ORDER_SHIPPED,
    "orders/cancelled": ev.ORDER_CANCELLED,
}
CHECKOUT_TOPICS = {"checkouts/create": ev.CHECKOUT_STARTED, "checkouts/update": ev.CART_UPDATED}
CUSTOMER_TOPICS = ("customers/create", "customers/update")
FULFILLMENT_TOPICS = ("fulfillments/create", "fulfillments/update")
TOPICS = frozenset(
    [*ORDER_TOPICS, *CHECKOUT_TOPICS, *CUSTOMER_TOPICS, *FULFILLMENT_TOPICS, "refunds/create"]
)
FAILED_FULFILLMENT = ("cancelled", "error", "failure")
# email_marketing_consent.state / sms_marketing_consent.state -> granted?; others: no change
CONSENT_STATES = {"subscribed": True, "unsubscribed": False}


class ShopifyFamily(Source):
    """Parser shared by Shopify, Haravan and Sapo."""

    def handles(self, topic: str) -> bool:
        """Topics listed in TOPICS are mapped; anything else is ignored by the caller."""
        return topic in TOPICS

    def parse(self, topic: str, payload: Any) -> list[CanonicalEvent]:
        """Map one webhook body to canonical events (one per webhook)."""
        data = obj(payload, "body")
        if topic in ORDER_TOPICS:
            return [self._order(topic, ORDER_TOPICS[topic], data)]
        if topic in CHECKOUT_TOPICS:
            return [self._checkout(topic, CHECKOUT_TOPICS[topic], data)]
        if topic in CUSTOMER_TOPICS:
            return [self._customer(topic, data)]
        if topic in FULFILLMENT_TOPICS:
            return [self._fulfillment(topic, data)]
        if topic == "refunds/create":
            return [self._refund(topic, data)]
        raise Ignored(f"unknown topic {topic}")

    # -- resources -------------------------------------------------------------------

    def _order(self, topic: str, type_: str, data: dict[str, Any]) -> CanonicalEvent:
        order_id = ident(require(data, "id", "id"), "id")
        currency = currency_code(data.get("currency"), "currency")
        total_key = "current_total_price" if data.get("current_total_price") is not None else (
            "total_price"
        )
        properties: dict[str, Any] = {
            "order_id": order_id,
            "order_number": text(data.get("name") or data.get("order_number"), MAX_ID),
            "total": minor_units(data.get(total_key), currency, total_key),
            "currency": currency,
            "status": text(data.get("financial_status")),
            "fulfillment_status": text(data.get("fulfillment_status")),
            "items": line_items(data.get("line_items"), currency),
            "checkout_token": text(data.get("checkout_token"), MAX_ID),
            "placed_at": timestamp(data.get("created_at"), "created_at").isoformat(),
        }
        if type_ == ev.ORDER_CANCELLED:
            properties["cancel_reason"] = text(data.get("cancel_reason"))
        if type_ == ev.ORDER_SHIPPED:
            properties.update(tracking(data.get("fulfillments")))
        return CanonicalEvent(
            type=type_,
            source_event_id=resource_key(topic, order_id, data),
            occurred_at=timestamp(data.get("updated_at") or data.get("created_at"), "updated_at"),
            contact=buyer(data),
            properties=properties,
        )

    def _checkout(self, topic: str, type_: str, data: dict[str, Any]) -> CanonicalEvent:
        token = ident(data["token"], "token") if text(data.get("token")) else ident(
            require(data, "id", "token"), "id"
        )
        currency = currency_code(data.get("currency"), "currency")
        properties = {
            "cart_id": token,
            "checkout_id": text(data.get("id"), MAX_ID),
            "total": minor_units(data.get("total_price"), currency, "total_price"),
            "currency": currency,
            "items": line_items(data.get("line_items"), currency),
            "recovery_url": text(data.get("abandoned_checkout_url")),
        }
        return CanonicalEvent(
            type=type_,
            source_event_id=resource_key(topic, token, data),
            occurred_at=timestamp(data.get("updated_at") or data.get("created_at"), "updated_at"),
            contact=buyer(data),
            properties=properties,
        )

    def _customer(self, topic: str, data: dict[str, Any]) -> CanonicalEvent:
        customer_id = ident(require(data, "id", "id"), "id")
        contact = customer_contact(data)
        granted = any(contact.consents.get((ch, "marketing")) for ch in ("email", "sms"))
        if topic == "customers/create" and granted:
            type_, properties = ev.LEAD_CAPTURED, {"form": f"{self.name}:customers/create"}
        else:
            type_, properties = ev.CONTACT_UPDATED, {}
        properties["customer_id"] = customer_id
        return CanonicalEvent(
            type=type_,
            source_event_id=resource_key(topic, customer_id, data),
            occurred_at=timestamp(data.get("updated_at") or data.get("created_at"), "updated_at"),
            contact=contact,
            properties=properties,
        )

    def _fulfillment(self, topic: str, data: dict[str, Any]) -> CanonicalEvent:
        fulfillment_id = ident(require(data, "id", "id"), "id")
        order_id = ident(require(data, "order_id", "order_id"), "order_id")
        status = (text(data.get("status")) or "").lower()
        if status in FAILED_FULFILLMENT:
            raise Ignored(f"fulfillment status {status}")
        shipment = (text(data.get("shipment_status")) or "").lower()
        type_ = ev.ORDER_DELIVERED if shipment == "delivered" else ev.ORDER_SHIPPED
        properties = {
            "order_id": order_id,
            "fulfillment_id": fulfillment_id,
            "shipment_status": shipment or None,
            **tracking([data]),
        }
        return CanonicalEvent(
            type=type_,
            source_event_id=resource_key(topic, fulfillment_id, data),
            occurred_at=timestamp(data.get("updated_at") or data.get("created_at"), "updated_at"),
            contact=buyer(data),
            properties=properties,
        )

    def _refund(self, topic: str, data: dict[str, Any]) -> CanonicalEvent:
        refund_id = ident(require(data, "id", "id"), "id")
        order_id = ident(require(data, "order_id", "order_id"), "order_id")
        amount, currency = refund_amount(data)
        return CanonicalEvent(
            type=ev.ORDER_REFUNDED,
            source_event_id=resource_key(topic, refund_id, data),
            occurred_at=timestamp(data.get("processed_at") or data.get("created_at"), "created_at"),
            contact=ContactData(),
            properties={
                "order_id": order_id,
                "refund_id": refund_id,
                "refund_amount": amount,
                "currency": currency,
            },
        )


class ShopifySource(ShopifyFamily):
    """Shopify: X-Shopify-* headers, or the same names without `X-` (Events deliveries)."""

    name: ClassVar[str] = "shopify"
    secret_setting: ClassVar[str] = "SHOPIFY_WEBHOOK_SECRET"
    signature_header: ClassVar[str] = "X-Shopify-Hmac-Sha256"
    topic_header: ClassVar[str | None] = "X-Shopify-Topic"
    delivery_header: ClassVar[str | None] = "X-Shopify-Webhook-Id"
    signature_headers: ClassVar[tuple[str, ...]] = ("X-Shopify-Hmac-Sha256", "Shopify-Hmac-Sha256")
    topic_headers: ClassVar[tuple[str, ...]] = ("X-Shopify-Topic", "Shopify-Topic")
    key_headers: ClassVar[tuple[str, ...]] = (
        "X-Shopify-Event-Id",
        "Shopify-Event-Id",
        "X-Shopify-Webhook-Id",
        "Shopify-Webhook-Id",
    )
    shop_headers: ClassVar[tuple[str, ...]] = ("X-Shopify-Shop-Domain", "Shopify-Shop-Domain")


SHOPIFY = ShopifySource()


# -- helpers -------------------------------------------------------------------------


def resource_key(topic: str, resource_id: str, data: dict[str, Any]) -> str:
    """Fallback dedupe key: topic + resource id + the resource's updated time."""
    stamp = text(data.get("updated_at")) or text(data.get("created_at")) or ""
    return f"{topic}:{resource_id}:{stamp}"


def tracking(fulfillments: Any) -> dict[str, Any]:
    """Tracking details from the last fulfillment that has any."""
    result: dict[str, Any] = {"tracking_url": None, "tracking_number": None, "carrier": None}
    if not isinstance(fulfillments, list):
        return result
    for item in fulfillments:
        if isinstance(item, dict) and (item.get("tracking_number") or item.get("tracking_url")):
            result = {
                "tracking_url": text(item.get("tracking_url")),
                "tracking_number": text(item.get("tracking_number")),
                "carrier": text(item.get("tracking_company")),
            }
    return result


def refund_amount(data: dict[str, Any]) -> tuple[int, str]:
    """Money returned by a refund: successful refund transactions, else line subtotals."""
    total, currency = 0, "VND"
    transactions = data.get("transactions")
    if isinstance(transactions, list) and transactions:
        for index, raw in enumerate(transactions):
            tx = obj(raw, f"transactions[{index}]")
            if (tx.get("kind") or "refund") != "refund" or tx.get("status") in ("failure", "error"):
                continue
            currency = currency_code(tx.get("currency"), f"transactions[{index}].currency")
            total += minor_units(tx.get("amount"), currency, f"transactions[{index}].amount")
        return total, currency
    lines = data.get("refund_line_items")
    if isinstance(lines, list):
        for index, raw in enumerate(lines):
            line = obj(raw, f"refund_line_items[{index}]")
            where = f"refund_line_items[{index}].subtotal"
            total += minor_units(line.get("subtotal"), currency, where)
    if total > MAX_MINOR_UNITS:
        raise PayloadError("transactions", "refund total is out of range")
    return total, currency


def consents(data: dict[str, Any]) -> dict[tuple[str, str], bool]:
    """Marketing consent the platform reports; states other than (un)subscribed change nothing."""
    result: dict[tuple[str, str], bool] = {}
    if data.get("accepts_marketing") is True or data.get("buyer_accepts_marketing") is True:
        result[("email", "marketing")] = True
    for key, channel in (("email_marketing_consent", "email"), ("sms_marketing_consent", "sms")):
        block = data.get(key)
        if isinstance(block, dict):
            state = str(block.get("state") or "").lower()
            if state in CONSENT_STATES:
                result[(channel, "marketing")] = CONSENT_STATES[state]
    return result


def customer_contact(customer: dict[str, Any], where: str = "") -> ContactData:
    """ContactData from a customer object (its own id, addresses and consents)."""
    address = customer.get("default_address")
    address = address if isinstance(address, dict) else {}
    region = text(address.get("country_code"))
    phone = clean_phone(customer.get("phone"), region) or clean_phone(address.get("phone"), region)
    locale = text(customer.get("locale"))
    return ContactData(
        external_id=optional_ident(customer.get("id"), f"{where}id"),
        email=clean_email(customer.get("email")),
        phone=phone,
        first_name=person_name(customer.get("first_name")),
        last_name=person_name(customer.get("last_name")),
        locale=locale if locale and len(locale) <= 16 else None,
        consents=consents(customer),
    )


def buyer(data: dict[str, Any]) -> ContactData:
    """The person behind an order or checkout: its customer, else the order's own fields."""
    customer = data.get("customer")
    contact = ContactData()
    if isinstance(customer, dict):
        contact = customer_contact(customer, "customer.")
    billing = data.get("billing_address")
    billing = billing if isinstance(billing, dict) else {}
    region = text(billing.get("country_code"))
    contact.email = contact.email or clean_email(data.get("email"))
    contact.phone = (
        contact.phone
        or clean_phone(data.get("phone"), region)
        or clean_phone(billing.get("phone"), region)
    )
    contact.first_name = contact.first_name or person_name(billing.get("first_name"))
    contact.last_name = contact.last_name or person_name(billing.get("last_name"))
    contact.consents = {**consents(data), **contact.consents}
    return contact
