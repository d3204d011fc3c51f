"""Delivery: send-time policy, rendering, channel wiring, per-channel queues, retries, fallback.

Modules: ``policy`` (consent, suppression, quiet hours, caps, Decree 91 profile),
``context`` (template context for an outbox row), ``channels`` (adapters from settings),
``ratelimit`` (per-provider messages per second), ``send`` (claim -> policy -> render ->
provider -> status), ``dispatch`` (``enqueue_messages``), ``actors`` (one queue per
channel), ``stale`` (scheduler sweep of lost or due outbox rows).
"""

QUEUES = ("email", "sms", "zalo", "messenger")
CHANNEL_QUEUE = {
    "email": "email",
    "sms": "sms",
    "zalo_zns": "zalo",
    "zalo_oa": "zalo",
    "messenger": "messenger",
}
CONSENT_CHANNEL = {
    "email": "email",
    "sms": "sms",
    "zalo_zns": "zalo",
    "zalo_oa": "zalo",
    "messenger": "messenger",
}
