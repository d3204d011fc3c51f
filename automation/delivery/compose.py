"""Compose an outbox row into an OutboundMessage: render, decorate per channel, store.

The generic steps (render with links rewritten, store ``rendered``/``links``/
``segments`` on the row) are written once; what differs per channel is one function in
``COMPOSE`` (Decree 91 decorations for marketing SMS and e-mail, SMS segment limit and
status-callback URL, ZNS template id, Messenger window and tag).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, bindparam, text, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from automation.core.bulk import rows_json
from automation.core.config import Settings
from automation.core.db import is_postgres
from automation.core.models import Contact, Message
from automation.core.vocabulary import MARKETING
from automation.delivery.context import messenger_window_open
from automation.delivery.pools import optout_url, poolable
from automation.delivery.providers import callback_url, sender_name
from automation.messages.compliance import decorate_email, decorate_sms
from automation.messages.errors import TemplateProblem
from automation.messages.render import render
from automation.messages.rendered import Rendered
from automation.messages.rewrite import links_mapping
from automation.messages.zns import effective_zns_id
from channels.base import OutboundMessage
from channels.segments import count_segments


@dataclass
class Draft:
    """A rendered row on its way out; channel composers adjust it in place."""

    message: Message
    contact: Contact
    rendered: Rendered
    unsubscribe: str
    marketing: bool
    settings: Settings
    segments: int | None = None
    fields: dict[str, Any] = field(default_factory=dict)  # channel-only OutboundMessage fields


def _email(d: Draft) -> None:
    r = d.rendered
    if d.marketing:
        r.subject, r.html, r.text = decorate_email(
            r.subject or "", r.html, r.text, d.unsubscribe, r.locale, d.settings
        )
    d.fields.update(unsubscribe_url=d.unsubscribe, unsubscribe_mailto=d.settings.unsubscribe_mailto)


def _sms(d: Draft) -> None:
    if d.marketing:
        d.rendered.text = decorate_sms(
            d.rendered.text, d.unsubscribe, d.settings, sender_name("sms", d.settings)
        )
    d.segments = count_segments(d.rendered.text).segments
    if d.segments > d.settings.sms_max_segments:
        raise TemplateProblem(
            f"template {d.message.template!r} sms: {d.segments} segments > "
            f"SMS_MAX_SEGMENTS={d.settings.sms_max_segments}"
        )


def _zalo_zns(d: Draft) -> None:
    r = d.rendered
    r.template_id = effective_zns_id(d.message.template, r.locale, r.template_id or "", d.settings)


def _messenger(d: Draft) -> None:
    tag = d.rendered.tag or ("POST_PURCHASE_UPDATE" if d.message.purpose != MARKETING else None)
    d.fields.update(window_open=messenger_window_open(d.contact), message_tag=tag)


#: Message channel -> what it adds to the generic composition.
COMPOSE: dict[str, Callable[[Draft], None]] = {
    "email": _email,
    "sms": _sms,
    "zalo_zns": _zalo_zns,
    "zalo_oa": lambda d: None,
    "messenger": _messenger,
}


def prepare(
    message: Message,
    contact: Contact,
    context: dict[str, Any],
    settings: Settings,
) -> OutboundMessage:
    """Render the row's template for its channel and build the OutboundMessage.

    Sets ``rendered``, ``links`` and ``segments`` on the row, written by
    :func:`store_prepared` (not by the session's flush); raises TemplateProblem.
    A row its provider sends pooled gets no per-message links or token (see delivery.pools).
    """
    pooled = poolable(message, settings)
    rendered = render(
        message.template,
        message.channel,
        context,
        contact.locale,
        settings=settings,
        message_id=None if pooled else message.id,
    )
    marketing = message.purpose == MARKETING and settings.compliance_profile != "none"
    unsubscribe = optout_url(settings) if pooled else str(context["unsubscribe_url"])
    draft = Draft(message, contact, rendered, unsubscribe, marketing, settings)
    COMPOSE[message.channel](draft)
    rendered_row = {
        k: v
        for k, v in {
            "locale": rendered.locale,
            "subject": rendered.subject,
            "text": rendered.text,
            "html": rendered.html,
            "template_id": rendered.template_id,
            "params": rendered.params or None,
            "buttons": rendered.buttons or None,
            "pool": (message.rendered or {}).get("pool"),  # the step's pool: wait
        }.items()
        if v is not None
    }
    # Set without marking the row dirty: store_prepared writes the batch's rows at once.
    set_committed_value(message, "rendered", rendered_row)
    set_committed_value(message, "links", links_mapping(rendered))
    set_committed_value(message, "segments", draft.segments)
    full_name = " ".join(p for p in (contact.last_name, contact.first_name) if p) or None
    assert message.address is not None
    return OutboundMessage(
        id=message.id,
        channel=message.channel,
        to=message.address,
        text=rendered.text,
        purpose=message.purpose,
        subject=rendered.subject,
        html=rendered.html,
        template_id=rendered.template_id,
        template_data=dict(rendered.params),
        buttons=list(rendered.buttons),
        callback_url=callback_url(message.channel, message.id, settings),
        to_name=full_name,
        **draft.fields,
    )


#: What :func:`prepare` sets on a row, written by :func:`store_prepared`.
PREPARED = ("address", "rendered", "links", "segments")
_messages = cast(Table, Message.__table__)
_STORE = (
    update(_messages)
    .where(_messages.c.id == bindparam("mid"))
    .values({k: bindparam(k) for k in PREPARED})
)
# PostgreSQL: one statement whatever the number of rows (automation.core.bulk).
_STORE_PG = text(
    """
    UPDATE messages AS m
    SET address = v.address, rendered = v.rendered, links = v.links, segments = v.segments
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
         AS v(mid bigint, address text, rendered jsonb, links jsonb, segments integer)
    WHERE m.id = v.mid AND m.id = ANY(CAST(:ids AS bigint[]))
    """
)


def store_prepared(session: Session, messages: list[Message]) -> None:
    """Write ``address``, ``rendered``, ``links`` and ``segments`` of ``messages`` (set by
    :func:`prepare` and the send path without marking the rows dirty) in one statement.

    Replaces the ORM's one UPDATE per row; the caller commits. ``updated_at`` stays the
    claim's (a few milliseconds earlier): no indexed column changes, so PostgreSQL can
    update the rows in place (HOT) without new index entries.
    """
    if not messages:
        return
    rows = [{"mid": m.id, **{k: getattr(m, k) for k in PREPARED}} for m in messages]
    if is_postgres(session):
        session.execute(_STORE_PG, {"rows": rows_json(rows), "ids": [m.id for m in messages]})
    else:
        session.execute(_STORE, rows)
