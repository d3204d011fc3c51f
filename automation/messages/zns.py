"""Zalo ZNS specifics: parameter length limits, template tags, configured template ids."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from automation.core.config import Settings, get_settings
from automation.messages.errors import TemplateProblem

#: Zalo ZNS parameter limits by parameter type (Zalo Cloud "data formats for ZNS
#: parameters": customer name 30; other sizes as listed there, best effort).
#: Unknown names get "default" (Zalo: "usually 30"). Override with ZNS_PARAM_LIMITS.
ZNS_TYPE_LIMITS: dict[str, int] = {
    "customer_name": 30,
    "phone": 15,
    "address": 200,
    "code": 30,
    "label": 30,
    "status": 30,
    "contact": 50,
    "gender": 5,
    "product_name": 200,
    "amount": 20,
    "time": 20,
    "otp": 10,
    "url": 200,
    "default": 30,
}
_TYPE_HINTS: tuple[tuple[str, str], ...] = (
    ("otp", "otp"),
    ("url", "url"),
    ("link", "url"),
    ("phone", "phone"),
    ("address", "address"),
    ("product", "product_name"),
    ("item", "product_name"),
    ("customer", "customer_name"),
    ("name", "customer_name"),
    ("status", "status"),
    ("total", "amount"),
    ("amount", "amount"),
    ("price", "amount"),
    ("cost", "amount"),
    ("date", "time"),
    ("time", "time"),
    ("code", "code"),
    ("number", "code"),
    ("id", "code"),
)


#: ZNS template tags (the template's type, set when Zalo approves it).
ZNS_TAGS: dict[int, str] = {1: "transaction", 2: "customer care", 3: "promotion"}
PROMOTION_TAG = 3


def zns_tag(sec: dict[str, Any], where: str) -> int | None:
    """The section's ``tag`` (1, 2 or 3), None when absent; TemplateProblem otherwise."""
    value = sec.get("tag")
    if value is None:
        return None
    if isinstance(value, bool) or str(value) not in {str(k) for k in ZNS_TAGS}:
        choices = ", ".join(f"{k} ({v})" for k, v in ZNS_TAGS.items())
        raise TemplateProblem(f"{where}.tag: {value!r} is not a ZNS tag; use {choices}")
    return int(value)


def zns_limit(param: str, declared_type: str | None, settings: Settings | None = None) -> int:
    """Max characters for a ZNS parameter: by name, declared type, or inferred type."""
    overrides = (settings or get_settings()).zns_param_limits
    return _limit(param, declared_type, tuple(overrides.items()))


@lru_cache(maxsize=1024)  # called for every parameter of every ZNS message
def _limit(param: str, declared_type: str | None, items: tuple[tuple[str, int], ...]) -> int:
    overrides = dict(items)
    limits = {**ZNS_TYPE_LIMITS, **overrides}
    if param in overrides:
        return overrides[param]
    kind = declared_type or next((k for hint, k in _TYPE_HINTS if hint in param.lower()), "default")
    return limits.get(kind, limits["default"])


def zns_template_ids(settings: Settings | None = None) -> dict[str, str]:
    """Configured ZNS template ids: ZNS_TEMPLATE_FILE (YAML) overlaid by ZNS_TEMPLATE_IDS."""
    settings = settings or get_settings()
    mapping: dict[str, str] = {}
    if settings.zns_template_file:
        path = Path(settings.zns_template_file)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise TemplateProblem(f"ZNS_TEMPLATE_FILE {path}: {exc}") from None
        if not isinstance(data, dict):
            raise TemplateProblem(f"ZNS_TEMPLATE_FILE {path}: expected `name: template_id` lines")
        mapping.update({str(k): str(v) for k, v in data.items()})
    mapping.update(settings.zns_template_ids)
    return mapping


def effective_zns_id(
    template_name: str, locale: str, shipped_id: str, settings: Settings | None = None
) -> str:
    """The id a ZNS send uses: ``name@locale`` or ``name`` override, else the shipped id."""
    mapping = zns_template_ids(settings)
    return mapping.get(f"{template_name}@{locale}") or mapping.get(template_name) or shipped_id
