"""The durable inbox: raw webhook deliveries stored first, mapped into events after.

    record    the request path: one INSERT ... ON CONFLICT DO NOTHING per request
    mapping   raw delivery -> canonical events (pure; the edge and the worker share it)
    store     canonical events -> contacts, identities, consents and events rows
    worker    map a stored delivery (actor and scheduler pass), quarantine, replay, list
    callbacks provider callbacks stored raw (sources from the provider registry), applied
              by the worker through automation.feedback.callbacks

A delivery is `pending` until mapped, then `mapped`, `ignored` (nothing we act on) or
`quarantined` (mapping failed: `reason` says why; `mactl inbox replay` tries again).
"""

PENDING = "pending"
MAPPED = "mapped"
QUARANTINED = "quarantined"
IGNORED = "ignored"
STATUSES = (PENDING, MAPPED, QUARANTINED, IGNORED)
