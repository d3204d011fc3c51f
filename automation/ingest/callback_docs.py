"""OpenAPI documentation of the provider callback routes: parameters, bodies, answers.

The callback endpoints read the raw request (signatures cover the exact bytes), so
FastAPI cannot infer their shape; this table states it, so the schema (and the
schemathesis run in CI) knows every header, path parameter, body and answer.
"""

from __future__ import annotations

from typing import Any

ERROR = {
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "required": ["error", "message"],
                "properties": {"error": {"type": "string"}, "message": {"type": "string"}},
            }
        }
    }
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "applied, duplicate, or ignored (a message we do not know)"},
    400: {**ERROR, "description": "body is not the provider's format"},
    401: {**ERROR, "description": "missing or wrong signature, or the secret is not set"},
    403: {**ERROR, "description": "subscription check with a wrong verify token"},
    404: {**ERROR, "description": "unknown route"},
    413: {**ERROR, "description": "body over MAX_BODY_BYTES"},
    422: {**ERROR, "description": "an id we cannot store or look up, named in the message"},
    503: {**ERROR, "description": "database unavailable; retry after Retry-After seconds"},
}


def _header(name: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}


def _query(name: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": {"type": "string"}}


def _json(properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


STRING = {"type": "string"}
OBJECT = {"type": "object"}
DOCS: dict[tuple[str, str], dict[str, Any]] = {
    ("esms", "GET"): {
        "parameters": [
            {"name": "message_id", "in": "path", "required": True,
             "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,17}$"}},
            {"name": "token", "in": "path", "required": True, "schema": STRING},
            *(_query(n) for n in ("SMSID", "SendStatus", "SendSuccess", "SendFailed")),
        ]
    },
    ("twilio", "POST"): {
        "parameters": [_header("X-Twilio-Signature"), _query("message_id")],
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            n: STRING for n in ("MessageSid", "MessageStatus", "ErrorCode", "To")
                        },
                    }
                }
            },
        },
    },
    ("zalo", "POST"): {
        "parameters": [_header("X-ZEvent-Signature")],
        "requestBody": _json(
            {"app_id": STRING, "event_name": STRING, "timestamp": STRING, "sender": OBJECT,
             "recipient": OBJECT, "message": OBJECT}
        ),
    },
    ("mailgun", "POST"): {
        "requestBody": _json({"signature": OBJECT, "event-data": OBJECT}),
    },
    ("facebook", "GET"): {
        "parameters": [_query(n) for n in ("hub.mode", "hub.verify_token", "hub.challenge")],
    },
    ("facebook", "POST"): {
        "parameters": [_header("X-Hub-Signature-256")],
        "requestBody": _json({"object": STRING, "entry": {"type": "array", "items": OBJECT}}),
    },
}


def openapi_extra(provider: str, method: str) -> dict[str, Any] | None:
    """The OpenAPI fragment of one callback route (None when it has no parameters or body)."""
    return DOCS.get((provider, method))
