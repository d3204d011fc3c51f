"""Channel adapters: one provider per module behind the interface in ``base``.

``channels`` never imports ``automation``. Construct adapters directly::

    EmailChannel("smtp://user:pass@smtp.example.com:587", "Shop <shop@example.com>")
    EsmsChannel(api_key, secret_key, brandname)
    TwilioChannel(account_sid, auth_token, "+15005550006")
    ZaloZnsChannel(OAuthRefresher(app_id, app_secret, store))
    ZaloOaChannel(OAuthRefresher(app_id, app_secret, store))
    MessengerChannel(page_token)
    FileTransport("var/outbox.jsonl", name="sms")   # demo, no credentials

Each provider module also verifies and parses its callbacks into the neutral
``channels.callback.CallbackResult`` records (``mailgun`` has callbacks only).
"""

from channels.base import Channel, OutboundMessage, SendResult
from channels.email import EmailChannel
from channels.errors import ChannelError, PermanentError, TransientError
from channels.esms import EsmsChannel
from channels.facebook import MessengerChannel
from channels.filetransport import FileTransport
from channels.retry import RetryPolicy
from channels.segments import SegmentCount, count_segments
from channels.twilio import TwilioChannel
from channels.zalo import ZaloOaChannel, ZaloZnsChannel
from channels.zalo_token import (
    InMemoryTokenStore,
    OAuthRefresher,
    StaticToken,
    TokenStore,
    ZaloTokenProvider,
)

__all__ = [
    "Channel",
    "ChannelError",
    "EmailChannel",
    "EsmsChannel",
    "FileTransport",
    "InMemoryTokenStore",
    "MessengerChannel",
    "OAuthRefresher",
    "OutboundMessage",
    "PermanentError",
    "RetryPolicy",
    "SegmentCount",
    "SendResult",
    "StaticToken",
    "TokenStore",
    "TransientError",
    "TwilioChannel",
    "ZaloOaChannel",
    "ZaloTokenProvider",
    "ZaloZnsChannel",
    "count_segments",
]
