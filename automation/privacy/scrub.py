"""Remove a person's fields and addresses from JSON documents (event properties, payloads)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

#: Keys whose values are personal data wherever they appear in a payload (case-insensitive).
PERSONAL_KEYS = frozenset(
    {
        "email",
        "phone",
        "phone_number",
        "mobile",
        "first_name",
        "last_name",
        "full_name",
        "customer",
        "contact",
        "address",
        "address1",
        "address2",
        "billing_address",
        "shipping_address",
        "default_address",
        "addresses",
        "zalo_user_id",
        "facebook_psid",
        "psid",
        "recipient",
        "ip",
        "browser_ip",
        "client_details",
        "note",
        "birthday",
        "gender",
        "company",
        "city",
        "zip",
        "street",
        "latitude",
        "longitude",
        "user_agent",
    }
)
REDACTED = "[erased]"


def scrub(value: Any, needles: Collection[str]) -> Any:
    """A copy of ``value`` without personal keys, and with ``needles`` redacted in strings."""
    if isinstance(value, dict):
        return {
            key: scrub(item, needles)
            for key, item in value.items()
            if str(key).lower() not in PERSONAL_KEYS
        }
    if isinstance(value, list):
        return [scrub(item, needles) for item in value]
    if isinstance(value, str):
        return redact(value, needles)
    return value


def redact(text: str, needles: Collection[str]) -> str:
    """``text`` with every needle (case-insensitive) replaced by ``[erased]``."""
    lowered = text.lower()
    for needle in needles:
        if needle and needle.lower() in lowered:
            start = lowered.find(needle.lower())
            while start != -1:
                text = text[:start] + REDACTED + text[start + len(needle) :]
                lowered = text.lower()
                start = lowered.find(needle.lower(), start + len(REDACTED))
    return text


def phone_forms(e164: str | None) -> list[str]:
    """The ways a Vietnamese shop writes one E.164 number: +8491..., 8491..., 091..."""
    if not e164:
        return []
    forms = [e164, e164.lstrip("+")]
    if e164.startswith("+84"):
        forms.append("0" + e164[3:])
    return forms
