"""Delivery: send-time policy, composing, provider registry, rate limits, retries, fallback.

Modules: ``policy`` (consent, suppression, quiet hours, caps, Decree 91 profile),
``context`` (template context for an outbox row), ``providers`` (one unit per provider
and the registry), ``channels`` (adapters from settings through the registry),
``tokens`` (provider OAuth tokens in the database), ``ratelimit`` (per-provider
messages per second), ``claim`` (one worker per row), ``compose`` (render + per-channel
decorations), ``outcome`` (sent / retry / failed / fallback), ``send`` (the batch:
claim -> policy -> compose -> provider -> outcome), ``deadletter``, ``stale`` (scheduler
sweep of lost or due outbox rows). Channels, queues and consent words live in
automation.core.vocabulary.
"""

