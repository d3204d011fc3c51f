"""Sample data (a Vietnamese contact, an order and a cart) for previews and validation."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from automation import links
from automation.core.config import Settings

SAMPLE_NOW = datetime(2026, 11, 2, 3, 0, tzinfo=UTC)
SAMPLE_ITEMS = [
    {"sku": "AT-001", "name": "Áo thun cotton", "quantity": 2, "price": 250000},
    {"sku": "QJ-014", "name": "Quần jean ống suông", "quantity": 1, "price": 750000},
]
SAMPLE: dict[str, Any] = {
    "contact": {
        "id": 1,
        "first_name": "Lan",
        "last_name": "Nguyễn Thị",
        "full_name": "Nguyễn Thị Lan",
        "email": "lan.nguyen@example.vn",
        "phone": "+84912345678",
        "attributes": {"city": "Hà Nội", "gender": "female", "discount_code": "CHAOBAN10"},
        "tags": ["vip"],
        "orders_count": 3,
        "total_spent": 3750000,
        "timezone": "Asia/Ho_Chi_Minh",
        "locale": "vi",
    },
    "order": {
        "order_id": "5001",
        "order_number": "#1001",
        "total": 1250000,
        "currency": "VND",
        "status": "paid",
        "items": SAMPLE_ITEMS,
        "checkout_token": "ck_123",
        "tracking_url": "https://ghn.vn/tracking?code=GHN123456",
        "tracking_number": "GHN123456",
        "carrier": "GHN",
        "created_at": "2026-11-02T10:00:00+07:00",
    },
    "cart": {
        "cart_id": "c_77",
        "total": 1250000,
        "items": SAMPLE_ITEMS,
        "recovery_url": "https://shop.example.vn/cart/recover/c_77",
    },
    "shop": {"name": "Cửa hàng Mẫu", "url": "https://shop.example.vn"},
    "unsubscribe_url": "https://shop.example.vn/u/sample",
    "now": SAMPLE_NOW,
    "timezone": "Asia/Ho_Chi_Minh",
}
SAMPLE["event"] = {**SAMPLE["order"], **SAMPLE["cart"], "form": "popup", "source": "website"}


def sample_context(settings: Settings | None = None) -> dict[str, Any]:
    """A copy of SAMPLE (a Vietnamese contact, an order and a cart) for previews and checks."""
    ctx = copy.deepcopy(SAMPLE)
    ctx["unsubscribe_url"] = links.unsubscribe_url(0, settings)
    return ctx
