"""Compose the MIME message for an :class:`OutboundMessage` (e-mail channel)."""

from __future__ import annotations

import re
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formatdate, parseaddr

from channels.base import OutboundMessage
from channels.errors import PermanentError

#: Our Message-ID (see :func:`message_id`); group 1 is the outbox row id.
OUR_MESSAGE_ID = re.compile(r"<?msg-(\d+)@")
#: RFC 5322 allows 998 octets; folding long URL headers at 78 can mangle them.
POLICY = SMTP.clone(max_line_length=998)


def sender_domain(email_from: str) -> str:
    """The domain of the From address (``Shop <a@shop.vn>`` -> ``shop.vn``)."""
    addr = parseaddr(email_from)[1]
    return addr.rpartition("@")[2] or "localhost"


def message_id(row_id: int, email_from: str) -> str:
    """Stable Message-ID derived from the outbox row id (idempotency key)."""
    return f"<msg-{row_id}@{sender_domain(email_from)}>"


def list_unsubscribe(msg: OutboundMessage) -> str | None:
    """The List-Unsubscribe value: ``<mailto:...>, <https://...>``, or None."""
    parts = []
    if msg.unsubscribe_mailto:
        mailto = msg.unsubscribe_mailto
        parts.append(f"<{mailto if mailto.startswith('mailto:') else 'mailto:' + mailto}>")
    if msg.unsubscribe_url:
        parts.append(f"<{msg.unsubscribe_url}>")
    return ", ".join(parts) or None


def build_email(msg: OutboundMessage, email_from: str) -> EmailMessage:
    """Build a UTF-8 text (+ HTML alternative) message with our headers."""
    em = EmailMessage(policy=POLICY)
    try:
        em["To"] = Address(display_name=msg.to_name or "", addr_spec=msg.to)
    except (HeaderParseError, ValueError, IndexError) as exc:
        raise PermanentError(f"invalid e-mail address {msg.to!r}", code="bad_address") from exc
    em["From"] = email_from
    em["Subject"] = msg.subject or ""
    em["Date"] = formatdate(usegmt=True)
    em["Message-ID"] = message_id(msg.id, email_from)
    unsubscribe = list_unsubscribe(msg)
    if unsubscribe:
        em["List-Unsubscribe"] = unsubscribe
    if msg.unsubscribe_url:
        em["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    em.set_content(msg.text, charset="utf-8", cte="quoted-printable")
    if msg.html:
        em.add_alternative(msg.html, subtype="html", charset="utf-8", cte="quoted-printable")
    return em
