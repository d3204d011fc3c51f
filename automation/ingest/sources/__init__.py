"""Shop platforms: each module turns one platform's raw payloads into canonical events."""

from __future__ import annotations

from automation.ingest.sources.base import Delivery, PayloadError, Source
from automation.ingest.sources.haravan import HARAVAN
from automation.ingest.sources.native import NativeSource
from automation.ingest.sources.sapo import SAPO
from automation.ingest.sources.shopify import SHOPIFY, ShopifyFamily
from automation.ingest.sources.woocommerce import WooCommerceSource

NATIVE = NativeSource()
WOOCOMMERCE = WooCommerceSource()
SOURCES: dict[str, Source] = {s.name: s for s in (SHOPIFY, HARAVAN, SAPO, WOOCOMMERCE, NATIVE)}

__all__ = [
    "HARAVAN",
    "NATIVE",
    "SAPO",
    "SHOPIFY",
    "Delivery",
    "SOURCES",
    "NativeSource",
    "PayloadError",
    "ShopifyFamily",
    "Source",
    "WOOCOMMERCE",
    "WooCommerceSource",
]
