"""Gateway errors, and the body gateway routes answer with.

Gateway routes answer in OpenAI's error shape, `{"error": {"message", "type", "param", "code"}}`,
which the `openai` SDK turns into `AuthenticationError`, `RateLimitError` and friends, with the
RFC 9457 members (`type`, `title`, `status`, `detail`) beside it in the same object. Anthropic's
routes (`/v1/messages`) answer in Anthropic's, `{"type": "error", "error": {"type",
"message"}}`, with the RFC 9457 members beside it, the problem's `type` as `problem_type`.
"""

from __future__ import annotations

from typing import Any

from tollhouse.errors import BadRequest, TollhouseError

OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "insufficient_quota",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    409: "invalid_request_error",
    413: "request_too_large",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
}
"""Status -> Anthropic's error `type` (Anthropic API docs, "Errors"); others are `api_error`."""


class GatewayError(TollhouseError):
    """Base of the gateway's own errors."""


class InvalidRequest(BadRequest):
    """The request body is not a valid call for this route (`param` names the field)."""

    code, title = "invalid-request", "Invalid request"


class WrongRoute(BadRequest):
    """The model is not served on this route (its category or its upstream's protocol
    belongs to another): `routes` lists the paths that serve it (empty: none does)."""

    code, title = "wrong-route", "Model not served on this route"


class InvalidAudio(InvalidRequest):
    """An uploaded audio file whose duration cannot be measured (see `gateway.audio`)."""

    code, title = "invalid-audio", "Invalid audio"


class OperatorKeyNotBillable(GatewayError):
    status, code, title = 403, "operator-key-not-billable", "Operator keys cannot call models"


class ModelNotAllowedForKey(GatewayError):
    status, code, title = 403, "model-not-allowed", "Model not allowed for this key"


class UpstreamError(GatewayError):
    """The upstream failed (connection error or 5xx); the hold was voided, nothing charged."""

    status, code, title = 502, "upstream-error", "Upstream error"


class UpstreamTimeout(UpstreamError):
    status, code, title = 504, "upstream-timeout", "Upstream timed out"


def openai_error_body(error: TollhouseError, instance: str | None = None) -> dict[str, Any]:
    """OpenAI's error object plus the problem+json members, for gateway routes."""
    body = error.to_problem(instance)
    body["error"] = {
        "message": error.detail,
        "type": OPENAI_ERROR_TYPES.get(error.status, "api_error"),
        "param": error.extra.get("param"),
        "code": error.code,
    }
    return body


def anthropic_error_body(error: TollhouseError, instance: str | None = None) -> dict[str, Any]:
    """Anthropic's error object plus the problem+json members (its `type` as
    `problem_type`), for Anthropic's routes."""
    problem = error.to_problem(instance)
    body: dict[str, Any] = {
        "type": "error",
        "error": {
            "type": ANTHROPIC_ERROR_TYPES.get(error.status, "api_error"),
            "message": error.detail,
        },
        "problem_type": problem.pop("type"),
    }
    body.update(problem)
    return body
