"""Provider answers that say who cannot be reached: hard bounces and unreachable contacts.

Read at send time by automation.delivery.outcome. Codes are the ``.code`` of the
channel adapters' PermanentError (see the tables in channels/zalo.py, facebook.py,
esms.py, twilio.py, email.py):

=========  =================  =====================================
channel    code               meaning
=========  =================  =====================================
zalo_zns   -118               no Zalo account for this phone
zalo_zns   -108               phone number invalid
messenger  100/2018001        no matching user (invalid recipient)
messenger  551                person not available right now
sms        108                eSMS: phone number format invalid
sms        21211 / 21614      Twilio: invalid To / not a mobile number
email      5xx                SMTP refused RCPT or DATA: hard bounce
=========  =================  =====================================
"""

from __future__ import annotations

UNREACHABLE_CODES: dict[str, dict[str, str]] = {
    "zalo_zns": {"-118": "no Zalo account", "-108": "invalid phone number"},
    "messenger": {"100/2018001": "no matching user", "551": "person not available"},
    "sms": {
        "108": "invalid phone number",
        "21211": "invalid phone number",
        "21614": "not a mobile number",
    },
}


def unreachable_reason(channel: str, code: str | None) -> str | None:
    """Why a PermanentError ``code`` on ``channel`` makes the contact unreachable, or None."""
    if not code:
        return None
    table = UNREACHABLE_CODES.get(channel, {})
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
