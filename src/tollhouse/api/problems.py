"""The one place where errors become HTTP responses (RFC 9457 problem+json).

Control API routes answer `application/problem+json`; gateway routes answer OpenAI's error
object with the problem members beside it (`gateway/errors.py`). Rate-limit denials carry
`Retry-After` and the decision's `RateLimit-Policy`, `RateLimit` and `RateLimit-*` header fields
(`tollhouse.ratelimit.fields`). Unexpected exceptions answer 500 with no internals in the body.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from tollhouse.errors import (
    BadRequest,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    TollhouseError,
)
from tollhouse.gateway.errors import openai_error_body
from tollhouse.ratelimit import RateLimited, retry_after_header_seconds

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

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
    error: TollhouseError, *, instance: str | None = None, openai_shape: bool = False
) -> Response:
    """Render `error` as problem+json (or the gateway's OpenAI-compatible variant).

    Never fails on what the error echoes: a string no UTF-8 encodes (a lone surrogate) is
    sent with U+FFFD in its place."""
    if openai_shape:
        body: dict[str, Any] = openai_error_body(error, instance)
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
    from tollhouse.gateway.call import ROUTES

    return path == "/v1/models" or any(route.path == path for route in ROUTES)


def _respond(request: Request, error: TollhouseError) -> Response:
    return problem_response(
        error, instance=request.url.path, openai_shape=is_gateway_path(request.url.path)
    )


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
    return _respond(request, error)


def unexpected_response(method: str, path: str, exc: BaseException) -> Response:
    """Log an unhandled error; the 500 answer, with no internals in it."""
    log.exception("unhandled error on %s %s", method, path, exc_info=exc)
    error = Internal("an internal error occurred; it has been logged")
    return problem_response(error, instance=path, openai_shape=is_gateway_path(path))


async def _unexpected(request: Request, exc: Exception) -> Response:
    return unexpected_response(request.method, request.url.path, exc)


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(TollhouseError, _tollhouse_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
