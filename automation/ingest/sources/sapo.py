"""Sapo: one route for its two products, told apart by what they post.

- Sapo Web (sapo.vn websites, the former Bizweb) posts Shopify's shape: `customer`,
  `billing_address`, `financial_status`, `total_price`; parsed by ShopifyFamily.
- Sapo GO (mysapogo.com omnichannel POS) posts its own shape with `tenant_id`,
  `customer_data` and `x-sapo-tenant-domain`; parsed by sapo_go.

Both sign with X-Sapo-Hmac-Sha256 and name the topic in X-Sapo-Topic.
"""

from __future__ import annotations

from typing import Any, ClassVar

from automation.core.events import CanonicalEvent
from automation.ingest.sources import sapo_go
from automation.ingest.sources.shopify import TOPICS, ShopifyFamily


class SapoSource(ShopifyFamily):
    """Sapo Web (Shopify-like) and Sapo GO on /webhooks/sapo with one secret."""

    name: ClassVar[str] = "sapo"
    secret_setting: ClassVar[str] = "SAPO_WEBHOOK_SECRET"
    signature_header: ClassVar[str] = "X-Sapo-Hmac-Sha256"
    topic_header: ClassVar[str | None] = "X-Sapo-Topic"
    shop_headers: ClassVar[tuple[str, ...]] = ("X-Sapo-Tenant-Domain", "X-Sapo-Shop-Domain")
    test_headers: ClassVar[tuple[str, ...]] = ("X-Sapo-Test",)

    def handles(self, topic: str) -> bool:
        """Topics of either product."""
        return topic in TOPICS or topic in sapo_go.TOPICS

    def parse(self, topic: str, payload: Any) -> list[CanonicalEvent]:
        """Sapo GO bodies go to sapo_go, everything else to the Shopify-family parser."""
        if sapo_go.is_sapo_go(payload):
            return sapo_go.parse(topic, payload)
        return super().parse(topic, payload)


SAPO = SapoSource()
