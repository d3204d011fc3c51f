"""Posting shop webhooks with arbitrary headers (Sapo GO, Haravan), signed like the shop."""

from __future__ import annotations

import copy
from typing import Any

from fastapi.testclient import TestClient
from httpx import Response

from automation.ingest.signatures import base64_hmac
from tests.ingest.helpers import SECRETS, answered, fixture_json, to_body

SIGNATURE = {"sapo": "X-Sapo-Hmac-Sha256", "haravan": "X-Haravan-Hmacsha256"}


def post_signed(
    client: TestClient, platform: str, payload: bytes | dict[str, Any], **headers: str
) -> Response:
    """POST to /webhooks/<platform> with the given headers plus a valid signature, then
    let the worker map what the request stored."""
    body = to_body(payload)
    signed = {"Content-Type": "application/json", SIGNATURE[platform]: base64_hmac(
        SECRETS[platform], body)}
    response = client.post(f"/webhooks/{platform}", content=body, headers={**signed, **headers})
    return answered(response, worker=True)


def variant(name: str, **changes: Any) -> dict[str, Any]:
    """A copy of a fixture with top-level fields replaced."""
    data = copy.deepcopy(fixture_json(name))
    data.update(changes)
    return data
