"""The system's shared words: channels, consent, queues, message statuses, engagement.

Every package reads these tables instead of writing its own copy, so a Zalo "read"
means the same thing to a segment rule as to a sequence ``if:``.

Engagement meaning (one table, used by segments and sequences):

    opened   <- opened, read, clicked, replied   (reading a Zalo/Messenger message is opening)
    clicked  <- clicked
    replied  <- replied
    engaged  <- opened, read, clicked, replied
"""

from __future__ import annotations

from typing import Final

#: Message channels a sequence step can send on.
CHANNELS: Final = ("email", "sms", "zalo_zns", "zalo_oa", "messenger")
#: Consent / suppression channels (a person consents to "zalo", not to one Zalo API).
CONSENT_CHANNELS: Final = ("email", "sms", "zalo", "messenger")
#: Message channel (or consent channel) -> consent / suppression channel.
CONSENT_CHANNEL: Final[dict[str, str]] = {
    "email": "email",
    "sms": "sms",
    "zalo_zns": "zalo",
    "zalo_oa": "zalo",
    "zalo": "zalo",
    "messenger": "messenger",
}
#: Message channel -> worker queue (one queue per channel family).
CHANNEL_QUEUE: Final[dict[str, str]] = {
    "email": "email",
    "sms": "sms",
    "zalo_zns": "zalo",
    "zalo_oa": "zalo",
    "messenger": "messenger",
}
QUEUES: Final = ("email", "sms", "zalo", "messenger")
#: Message channel -> the contact column holding the address it sends to.
ADDRESS_FIELD: Final[dict[str, str]] = {
    "email": "email",
    "sms": "phone",
    "zalo_zns": "phone",
    "zalo_oa": "zalo_user_id",
    "messenger": "facebook_psid",
}
#: Channel names a rule may use -> the message channels they cover.
RULE_CHANNELS: Final[dict[str, tuple[str, ...]]] = {
    "any": CHANNELS,
    "email": ("email",),
    "sms": ("sms",),
    "zalo": ("zalo_zns", "zalo_oa"),
    "zalo_zns": ("zalo_zns",),
    "zalo_oa": ("zalo_oa",),
    "messenger": ("messenger",),
}

PURPOSES: Final = ("marketing", "transactional")
MARKETING: Final = "marketing"
TRANSACTIONAL: Final = "transactional"
#: Consent states (a denial is a refusal or a withdrawal; no row means no consent).
GRANTED: Final = "granted"
DENIED: Final = "denied"
#: Consent channels bound to the phone number: one denial on a shared phone stops them.
PHONE_CONSENT_CHANNELS: Final = ("sms", "zalo")


class Status:
    """Outbox message statuses."""

    QUEUED: Final = "queued"
    DEFERRED: Final = "deferred"
    SENDING: Final = "sending"
    SENT: Final = "sent"
    DELIVERED: Final = "delivered"
    READ: Final = "read"
    OPENED: Final = "opened"
    CLICKED: Final = "clicked"
    REPLIED: Final = "replied"
    COMPLAINED: Final = "complained"
    BOUNCED: Final = "bounced"
    FAILED: Final = "failed"
    SKIPPED: Final = "skipped"
    POOLED: Final = "pooled"  # held in an advertising SMS pool (automation.delivery.pools)
    #: The provider call was in flight at a crash: it may or may not have gone out.
    UNKNOWN: Final = "unknown"


#: Forward-only order of message states; a result never moves a message backwards.
STATUS_RANK: Final[dict[str, int]] = {
    Status.QUEUED: 0,
    Status.DEFERRED: 0,
    Status.SENDING: 1,
    Status.UNKNOWN: 1,  # a provider callback may still tell what happened
    Status.SENT: 2,
    Status.DELIVERED: 3,
    Status.READ: 4,
    Status.OPENED: 4,
    Status.CLICKED: 5,
    Status.REPLIED: 6,
    Status.COMPLAINED: 7,
}
#: Statuses a message never leaves.
TERMINAL_STATUSES: Final = frozenset({Status.BOUNCED, Status.FAILED, Status.SKIPPED})
#: Statuses of a message still waiting to go out.
PENDING_STATUSES: Final = (Status.QUEUED, Status.DEFERRED, Status.SENDING)
#: Every other status: the message went out, failed, or is held/unknown (listed so that
#: queries can use ``status IN (...)``, which an index on status serves, not NOT IN).
SETTLED_STATUSES: Final = tuple(
    value
    for name, value in vars(Status).items()
    if name.isupper() and isinstance(value, str) and value not in PENDING_STATUSES
)
#: Statuses that mean the provider accepted the message (or better).
ACCEPTED_STATUSES: Final = tuple(s for s, rank in STATUS_RANK.items() if rank >= 2)

#: Engagement word -> the message-event types that count as it (segments and sequences).
ENGAGEMENT: Final[dict[str, tuple[str, ...]]] = {
    "opened": ("opened", "read", "clicked", "replied"),
    "clicked": ("clicked",),
    "replied": ("replied",),
    "engaged": ("opened", "read", "clicked", "replied"),
}

#: Per-contact channel reachability states (automation.contacts.reachability).
REACHABLE: Final = "reachable"
UNREACHABLE: Final = "unreachable"
