"""Provider answers that say who cannot be reached: hard bounces and unreachable contacts.

Read at send time by automation.delivery.outcome:

- each provider unit declares the PermanentError codes that mean "this contact cannot
  be reached on this channel" (``Sender.unreachable``: Zalo ZNS -118 no Zalo account and
  -108 bad phone, Messenger 100/2018001 and 551, the SMS providers' invalid-number
  codes); the adapter tables in channels/ name the codes;
- an SMTP 5xx answer to RCPT or DATA is a hard bounce, a 4xx one a soft bounce once
  the last try failed.
"""

from __future__ import annotations

from automation.delivery.providers import UNREACHABLE


def unreachable_reason(provider: str, code: str | None) -> str | None:
    """Why a PermanentError ``code`` from ``provider`` makes the contact unreachable, or None.

    Graph codes come as ``code/subcode``; a table entry without a subcode matches any.
    """
    if not code:
        return None
    table = UNREACHABLE.get(provider, {})
    return table.get(code) or table.get(code.split("/", 1)[0])


def _smtp_class(channel: str, code: str | None) -> str | None:
    if channel != "email" or code is None or len(code) != 3 or not code.isdigit():
        return None
    return code[0]


def is_hard_bounce(channel: str, code: str | None) -> bool:
    """An SMTP 5xx answer to RCPT or DATA."""
    return _smtp_class(channel, code) == "5"


def is_soft_bounce(channel: str, code: str | None) -> bool:
    """An SMTP 4xx answer to RCPT or DATA (counted once the last try failed)."""
    return _smtp_class(channel, code) == "4"
