"""The data a template preview or a test send renders with: the sample, or one contact."""

from __future__ import annotations

from typing import Any

from admin_cli.contact_ref import resolve_contact
from automation.core.config import Settings


def template_context(settings: Settings, contact: str | None = None) -> dict[str, Any]:
    """The sample context; with ``contact`` (any reference), that contact's fields instead."""
    from automation.core.db import session_scope
    from automation.delivery.context import contact_view
    from automation.messages.samples import sample_context
    ctx = sample_context(settings)
    if contact is None:
        return ctx
    with session_scope(settings) as session:
        ctx["contact"] = contact_view(resolve_contact(session, contact), settings)
        ctx["timezone"] = ctx["contact"]["timezone"]
    return ctx
