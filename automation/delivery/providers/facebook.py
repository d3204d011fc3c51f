"""Facebook Messenger: adapter from FACEBOOK_PAGE_TOKEN, webhook check and events.

GET /callbacks/facebook answers the subscription check (FACEBOOK_VERIFY_TOKEN); POST
events are signed with FACEBOOK_APP_SECRET.
"""

from __future__ import annotations

from automation.core.config import Settings
from automation.delivery.providers.base import (
    OBJECT,
    STRING,
    CallbackRoute,
    Sender,
    body_schema,
    header_param,
    query_params,
)
from channels import facebook
from channels.base import Channel
from channels.callback import CallbackRequest, CallbackResult, required

NAME = "facebook"
PATH = "/facebook"


def _build(s: Settings) -> Channel:
    assert s.facebook_page_token
    return facebook.MessengerChannel(s.facebook_page_token, graph_base=s.facebook_graph_base)


def _challenge(request: CallbackRequest, settings: Settings) -> str:
    """Webhook subscription check: echo hub.challenge when hub.verify_token matches."""
    return facebook.subscription_challenge(request, settings.facebook_verify_token)


def _handle(request: CallbackRequest, settings: Settings) -> list[CallbackResult]:
    """Messenger webhook: deliveries, reads and inbound messages."""
    secret = required(settings.facebook_app_secret, "FACEBOOK_APP_SECRET")
    return facebook.read_callback(request, secret)


SENDERS = (
    Sender(
        provider="messenger",
        channel="messenger",
        adapter=facebook.MessengerChannel,
        rate=100.0,
        need="FACEBOOK_PAGE_TOKEN",
        configured=lambda s: bool(s.facebook_page_token),
        detail=lambda s: s.facebook_graph_base,
        build=_build,
        settings_prefixes=("facebook",),
        unreachable={"100/2018001": "no matching user", "551": "person not available"},
    ),
)
CHALLENGE_DOC = {"parameters": query_params("hub.mode", "hub.verify_token", "hub.challenge")}
DOC = {
    "parameters": [header_param("X-Hub-Signature-256")],
    "requestBody": body_schema(
        "application/json", {"object": STRING, "entry": {"type": "array", "items": OBJECT}}
    ),
}
ROUTES = (
    CallbackRoute(NAME, "GET", PATH, _challenge, CHALLENGE_DOC),
    CallbackRoute(NAME, "POST", PATH, _handle, DOC),
)
