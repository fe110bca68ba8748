"""The one place where errors become HTTP responses (RFC 9457 problem+json).

Control API routes answer `application/problem+json`; gateway routes answer OpenAI's error
object with the problem members beside it (`gateway/errors.py`). Rate-limit denials carry
`Retry-After` and the decision's `RateLimit-Policy`, `RateLimit` and `RateLimit-*` header fields
(`tollhouse.ratelimit.fields`); 405 answers carry `Allow`. Unexpected exceptions answer 500
with no internals in the body; an unreachable database answers 503 `database-unavailable` with
`Retry-After` (`storage.outage`).

Routes document the problems they answer with `responses=responses(401, 403, ...)`: each
status with the `Problem` schema (`GatewayProblem` for gateway routes), which `api.docs` adds
to the OpenAPI document's components.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Literal

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.routing import Match

from tollhouse.errors import (
    BadRequest,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TollhouseError,
)
from tollhouse.gateway.errors import anthropic_error_body, openai_error_body
from tollhouse.observability.context import note_problem
from tollhouse.ratelimit import RateLimited, retry_after_header_seconds
from tollhouse.storage.outage import is_unreachable, unavailable

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

HTTP_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
"""The methods a route may take, as `Allow` lists them."""

_SURROGATE = re.compile("[\ud800-\udfff]")


class MethodNotAllowed(TollhouseError):
    status, code, title = 405, "method-not-allowed", "Method not allowed"


class Internal(TollhouseError):
    status, code, title = 500, "internal", "Internal error"


def problem_headers(error: TollhouseError) -> dict[str, str]:
    """A rate-limit denial's header fields (`RateLimited.headers`), and `Retry-After` for
    every error with a `retry_after_seconds` extra."""
    headers = dict(error.headers) if isinstance(error, RateLimited) else {}
    retry = error.extra.get("retry_after_seconds")
    if isinstance(retry, (int, float)) and "Retry-After" not in headers:
        headers["Retry-After"] = str(retry_after_header_seconds(retry))
    return headers


def problem_response(
    error: TollhouseError,
    *,
    instance: str | None = None,
    openai_shape: bool = False,
    anthropic_shape: bool = False,
) -> Response:
    """Render `error` as problem+json (or the gateway's OpenAI- or Anthropic-compatible
    variant; `anthropic_shape` wins).

    Never fails on what the error echoes: a string no UTF-8 encodes (a lone surrogate) is
    sent with U+FFFD in its place. The request's metrics count its `code` (`note_problem`)."""
    note_problem(error.code)
    if anthropic_shape:
        body: dict[str, Any] = anthropic_error_body(error, instance)
        media_type = "application/json"
    elif openai_shape:
        body = openai_error_body(error, instance)
        media_type = "application/json"
    else:
        body = error.to_problem(instance)
        media_type = PROBLEM_JSON
    return Response(
        _encoded(body),
        status_code=error.status,
        media_type=media_type,
        headers=problem_headers(error),
    )


def _encoded(body: dict[str, Any]) -> bytes:
    try:
        return orjson.dumps(body, default=str)
    except orjson.JSONEncodeError:  # a lone surrogate, or an integer beyond 64 bits
        text = json.dumps(body, default=str, ensure_ascii=False)
        return _SURROGATE.sub("\ufffd", text).encode()


def is_gateway_path(path: str) -> bool:
    from tollhouse.gateway.call import ANTHROPIC_PATHS, ROUTES

    return (
        path == "/v1/models"
        or path in ANTHROPIC_PATHS
        or any(route.path == path for route in ROUTES)
    )


def problem_response_at(error: TollhouseError, path: str) -> Response:
    """`error` as the route at `path` answers it: Anthropic's shape on Anthropic's routes,
    OpenAI's on the other gateway routes, problem+json elsewhere."""
    from tollhouse.gateway.call import ANTHROPIC_PATHS

    return problem_response(
        error,
        instance=path,
        openai_shape=is_gateway_path(path),
        anthropic_shape=path in ANTHROPIC_PATHS,
    )


def _respond(request: Request, error: TollhouseError) -> Response:
    return problem_response_at(error, request.url.path)


async def _tollhouse_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TollhouseError)
    return _respond(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {
            "loc": ".".join(str(part) for part in err.get("loc", ())),
            "msg": str(err.get("msg", "")),
        }
        for err in exc.errors()
    ]
    if any(err.get("type") == "json_invalid" for err in exc.errors()):
        return _respond(request, BadRequest("the request body is not valid JSON", errors=errors))
    detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors) or "invalid input"
    return _respond(request, InvalidInput(detail, errors=errors))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    error: TollhouseError
    if exc.status_code == 404:
        error = NotFound(f"no route {request.method} {request.url.path}")
    elif exc.status_code == 405:
        error = MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}")
    elif exc.status_code == 413:
        error = PayloadTooLarge(str(exc.detail))
    elif exc.status_code == 400:
        error = BadRequest(str(exc.detail))
    else:
        error = Internal(str(exc.detail))
    response = _respond(request, error)
    response.headers.update(exc.headers or {})
    if exc.status_code == 405:
        response.headers["Allow"] = allowed_methods(request)
    return response


def allowed_methods(request: Request) -> str:
    """The `Allow` value of a 405: every method some route takes at this path, where
    Starlette's own names only the first route's (a path with a GET and a POST route)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in HTTP_METHODS
        if any(
            route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes
        )
    )


def unexpected_response(method: str, path: str, exc: BaseException) -> Response:
    """Log an unhandled error; the 500 answer, with no internals in it. An unreachable
    database (`storage.outage.is_unreachable`) is no bug: one warning line, and 503
    `database-unavailable` with `Retry-After`."""
    if is_unreachable(exc):
        log.warning("database unavailable on %s %s: %r", method, path, exc)
        return problem_response_at(unavailable(exc), path)
    log.exception("unhandled error on %s %s", method, path, exc_info=exc)
    error = Internal("an internal error occurred; it has been logged")
    return problem_response_at(error, path)


async def _unexpected(request: Request, exc: Exception) -> Response:
    return unexpected_response(request.method, request.url.path, exc)


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(TollhouseError, _tollhouse_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)


class FieldError(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    loc: str
    """Where the offending value is, dotted: `body.events.0.meter`, `query.limit`; `body`
    for the whole body, `path` for the request's path."""
    msg: str


class Problem(BaseModel):
    """An RFC 9457 problem: the body of every control-API error, as `application/problem+json`.

    Members beyond these carry the occurrence's data (`retry_after_seconds`, `fields`,
    `balance_micros`, ...)."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    type: str
    """`https://tollhouse.dev/problems/<code>`: stable, one per error class."""
    title: str
    status: int
    detail: str
    """What happened this time, for a person."""
    instance: str | None = None
    """The request path."""
    errors: list[FieldError] | None = None
    """422 `invalid-input` (and 400 for a body that is not JSON): each offending field."""


class OpenAIError(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    message: str
    type: str
    """OpenAI's error type (`invalid_request_error`, `rate_limit_error`, ...)."""
    param: str | None = None
    code: str
    """The problem's code (the last segment of its `type`)."""


class GatewayProblem(Problem):
    """A gateway error, as `application/json`: OpenAI's `error` object (which the `openai` SDK
    reads) with the problem members beside it."""

    error: OpenAIError


class AnthropicError(BaseModel):
    model_config = ConfigDict(use_attribute_docstrings=True)

    type: str
    """Anthropic's error type (`invalid_request_error`, `billing_error`, ...)."""
    message: str


class AnthropicProblem(BaseModel):
    """An error of Anthropic's routes (`/v1/messages`), as `application/json`: Anthropic's
    error object (which the `anthropic` SDK reads) with the problem members beside it, the
    problem's `type` as `problem_type`."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True)

    type: Literal["error"]
    error: AnthropicError
    problem_type: str
    """`https://tollhouse.dev/problems/<code>`: stable, one per error class."""
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[FieldError] | None = None


ERROR_MODELS = (FieldError, Problem, OpenAIError, GatewayProblem, AnthropicError, AnthropicProblem)
"""The models that `responses()` refers to, by name, under `#/components/schemas/`."""

_DESCRIPTIONS = {
    400: "The request body is not JSON, or not a valid call",
    401: "Missing, malformed, unknown, revoked or expired API key",
    402: "Not enough credits for the call's estimated price, or a payment method is required",
    403: "The key lacks the scope, operator rights, model, feature or tier",
    404: "No such resource (or not the caller's)",
    409: "Conflict with the current state, or an idempotency key reused with other arguments",
    413: "The request body is larger than the server's limit",
    422: "Invalid input: `errors` names each offending field",
    429: "Rate limit or quota exceeded: retry after `Retry-After` seconds",
    502: "The upstream (or the payment provider) failed; nothing was charged",
    503: "A dependency is unavailable: retry after `Retry-After` seconds",
    504: "The upstream timed out; nothing was charged",
}

_RETRY_HEADERS = {
    "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}},
}


def responses(
    *statuses: int, openai_shape: bool = False, anthropic_shape: bool = False
) -> dict[int | str, dict[str, Any]]:
    """The `responses=` of a route that may answer these error statuses: each with the
    `Problem` body as `application/problem+json` (with `openai_shape`, the gateway's
    `GatewayProblem` as `application/json`; with `anthropic_shape`, `AnthropicProblem`), and
    `Retry-After` on 429 and 503."""
    media_type, model = (PROBLEM_JSON, "Problem")
    if anthropic_shape:
        media_type, model = ("application/json", "AnthropicProblem")
    elif openai_shape:
        media_type, model = ("application/json", "GatewayProblem")
    documented: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        documented[status] = {
            "description": _DESCRIPTIONS[status],
            "content": {media_type: {"schema": {"$ref": f"#/components/schemas/{model}"}}},
        }
        if status in (429, 503):
            documented[status]["headers"] = _RETRY_HEADERS
    return documented


def replay(model: type[Any]) -> dict[int | str, dict[str, Any]]:
    """The `responses=` entry of a create route (201) whose idempotency key, sent again,
    answers 200 with the first result as `model`; merge it with `responses(...)`."""
    return {200: {"model": model, "description": "A replay of the key: the first result"}}
