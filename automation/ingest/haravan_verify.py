"""Haravan's webhook subscription check on the webhook URL itself.

When a webhook is registered, Haravan calls
`GET /webhooks/haravan?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...` and
expects the challenge echoed (200, text/plain) when the token is the one configured in
the app (HARAVAN_VERIFY_TOKEN); anything else is 401 (docs.haravan.com, webhooks
tutorial "Connect webhook", and Haravan's Node sample).
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from automation.core.config import get_settings

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
MAX_CHALLENGE = 256


def challenge_answer(query: Mapping[str, str], expected: str) -> str | None:
    """The challenge to echo when mode and token match (constant-time), else None."""
    token = query.get("hub.verify_token", "")
    challenge = query.get("hub.challenge", "")
    if (
        query.get("hub.mode") != "subscribe"
        or not hmac.compare_digest(expected.encode(), token.encode())
        or not 0 < len(challenge) <= MAX_CHALLENGE
    ):
        return None
    return challenge


@router.get(
    "/haravan",
    response_class=PlainTextResponse,
    responses={
        200: {"description": "the hub.challenge, echoed", "content": {"text/plain": {}}},
        401: {"description": "hub.mode, hub.verify_token or hub.challenge wrong or missing"},
        503: {"description": "HARAVAN_VERIFY_TOKEN is not set"},
    },
)
def haravan_verify(request: Request) -> Response:
    """Echo hub.challenge when hub.verify_token equals HARAVAN_VERIFY_TOKEN; 401 otherwise."""
    expected = get_settings().haravan_verify_token
    if not expected:
        return JSONResponse(
            {
                "error": "source_not_configured",
                "message": "set HARAVAN_VERIFY_TOKEN to the Verify Token entered in Haravan",
                "field": "HARAVAN_VERIFY_TOKEN",
            },
            status_code=503,
        )
    answer = challenge_answer(request.query_params, expected)
    if answer is None:
        return JSONResponse(
            {
                "error": "verification_failed",
                "message": "hub.verify_token does not match HARAVAN_VERIFY_TOKEN "
                "(or hub.mode/hub.challenge missing)",
            },
            status_code=401,
        )
    return PlainTextResponse(answer)
