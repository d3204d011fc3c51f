"""Provider callbacks in the inbox: which sources they are, what the edge stores, and
applying a stored one (the worker).

A provider unit opts in by giving its ``CallbackRoute`` an ``Inbox`` (source name, dedupe
key, parser); :data:`SOURCES` is built from the provider registry, so nothing here names
a provider. The worker parses the stored body again with the unit's parser and records
the results through automation.feedback.callbacks, exactly as a synchronous callback
would.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from automation.core.models_inbox import InboxDelivery
from automation.delivery.providers import ROUTES
from automation.delivery.providers.base import CallbackRoute, Inbox
from automation.feedback.callbacks import apply
from automation.inbox import IGNORED, MAPPED, QUARANTINED
from automation.inbox.mapping import KEY_LENGTH, TOPIC_LENGTH, Delivery
from automation.ingest.sources.base import stable_key
from channels.callback import IGNORED as NOTHING
from channels.callback import CallbackRejected, CallbackResult

#: Inbox source -> the provider callback route whose bodies it holds.
SOURCES: dict[str, CallbackRoute] = {r.inbox.source: r for r in ROUTES if r.inbox}


def edge_delivery(inbox: Inbox, body: bytes) -> Delivery:
    """The inbox row for a verified callback body (retries of one event share its key)."""
    topic, key = inbox.key(body)
    if len(key) > KEY_LENGTH:
        key = stable_key(key)
    return Delivery(inbox.source, topic[:TOPIC_LENGTH], key, body)


def nothing_to_apply(results: list[CallbackResult]) -> bool:
    """True when the provider reported nothing we track (not worth storing)."""
    return all(result.kind == NOTHING for result in results)


def apply_stored(session: Session, row: InboxDelivery) -> tuple[str, str | None, list[int]]:
    """Apply a stored callback row: (inbox status, reason, new canonical event ids).

    Flushes, never commits. A body the parser refuses is quarantined with the reason; a
    callback about messages we do not know ends ``ignored``.
    """
    route = SOURCES[row.source]
    assert route.inbox is not None
    try:
        results = route.inbox.parse(row.body)
    except CallbackRejected as exc:
        return QUARANTINED, f"{exc.error}: {exc.message}"[:200], []
    outcome = apply(session, route.provider, results)
    if outcome.ignored and not (outcome.applied or outcome.duplicates):
        return IGNORED, "about no message or person we know", []
    return MAPPED, None, outcome.event_ids
