"""ASGI middleware that settles the units of work a request authorized (`toll.Work`) once
its response is sent, for FastAPI, Starlette or any ASGI application.

Every HTTP request gets a list of works in its scope (`WORKS`); the FastAPI dependency
(`integrations.fastapi.requires`) adds to it, and so does the middleware itself for the
routes of its `rules` (plain ASGI apps). Their headers (rate limits, balance, session) are
added to the response's start; when the application returns, each work is settled:
captured and recorded when the status is below 400, voided on a 4xx or 5xx status or an
exception; a work the application `keep`s (a queued job) is left for it to settle. A denial is answered as tollhouse answers it (problem+json).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.datastructures import MutableHeaders
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tollhouse.api.deps import bearer_token
from tollhouse.api.problems import problem_response
from tollhouse.errors import TollhouseError
from tollhouse.integrations.toll import Requirement, Toll, Work
from tollhouse.sdk.errors import APIStatusError

WORKS = "tollhouse.works"
"""The scope key of a request's authorized works."""


PASSED_HEADERS = ("retry-after", "ratelimit", "ratelimit-policy", "ratelimit-limit",
                  "ratelimit-remaining", "ratelimit-reset")  # fmt: skip
"""A remote denial's header fields the caller gets as they came."""


def denial_response(error: TollhouseError | APIStatusError, instance: str) -> Response:
    """The answer to a refused unit of work: tollhouse's problem+json (with `Retry-After`
    and the rate-limit fields), the local error rendered, a remote one passed on as it came."""
    if isinstance(error, TollhouseError):
        return problem_response(error, instance=instance)
    body = {"type": error.type, "title": error.title, "status": error.status,
            "detail": error.detail, **error.extra, "instance": instance}  # fmt: skip
    headers = {name: value for name, value in error.headers.items() if name in PASSED_HEADERS}
    return JSONResponse(body, error.status, headers, media_type="application/problem+json")


def caller_key(scope: Scope) -> str:
    """The caller's tollhouse key: `Authorization: Bearer th_...`, or `x-api-key`.

    Raises:
        Unauthenticated: neither header.
    """
    authorization = None
    for name, value in scope["headers"]:
        if name == b"x-api-key" and value.strip():
            return str(value.decode("latin-1").strip())
        if name == b"authorization":
            authorization = value
    return bearer_token(authorization)


def idempotency_key(scope: Scope) -> str | None:
    """The request's `Idempotency-Key` header: a retried request finds its first hold."""
    for name, value in scope["headers"]:
        if name == b"idempotency-key":
            return str(value.decode("latin-1"))[:128] or None
    return None


class TollMiddleware:
    """Settles each request's works after its response (see the module docstring).

    `rules` maps `(METHOD, path)` to the `Requirement` the middleware authorizes before
    calling the application (for apps without FastAPI's dependencies); the work is then in
    `scope["tollhouse.works"]`."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        toll: Toll,
        rules: Mapping[tuple[str, str], Requirement] | None = None,
    ) -> None:
        self.app = app
        self.toll = toll
        self.rules = dict(rules or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        works: list[Work] = []
        scope[WORKS] = works
        requirement = self.rules.get((scope["method"], scope["path"]))
        if requirement is not None:
            try:
                key = caller_key(scope)
                works.append(
                    await self.toll.authorize(
                        key, requirement, idempotency_key=idempotency_key(scope)
                    )
                )
            except (TollhouseError, APIStatusError) as error:
                await denial_response(error, scope["path"])(scope, receive, send)
                return
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                for work in works:
                    for name, value in work.headers.items():
                        headers[name] = value
            await send(message)

        succeeded = False
        try:
            await self.app(scope, receive, send_with_headers)
            succeeded = status < 400
        finally:
            for work in works:
                if not work.kept:
                    await self.toll.settle(work, succeeded=succeeded)
