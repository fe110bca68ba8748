"""The gateway routes (the hot path: `call_model` is a raw ASGI handler).

OpenAI's chat completions, completions, embeddings, images, speech and Responses
(`/v1/responses`), and Anthropic's Messages (`/v1/messages`, for models on an `anthropic`
upstream; the key in `x-api-key` or `Authorization: Bearer`, `anthropic-version` and
`anthropic-beta` passed on). `POST /v1/messages/count_tokens` is answered here, with the
model's tokenizer: authenticated and access-checked, nothing held or charged.

Each call: authenticate (with the in-flight caps, `api.in_flight`) -> parse (JSON, or the
multipart audio form of transcriptions and translations, `gateway.audio`) -> model -> route
check (the model is served on this route,
`Model.routes`, else 400 `wrong-route` naming the right one) -> estimate -> admit (scope,
access, rate limit, hold) -> forward -> charge -> answer -> finish (gateway/settle.py: the
capture and the usage events are committed before a whole answer is sent, and before a
stream's end is passed on; the session cap, token window and key's last use follow).
Denials come before the upstream is called. Errors use OpenAI's error shape with
problem+json members (Anthropic's on Anthropic's routes). A whole answer whose charge is not
written within `CHARGE_WAIT_SECONDS` (the database fails it) is withheld: 503
`database-unavailable`, and the charge goes on until written (the upstream did the work; a
client that gives up waiting is charged the same). A charge that fails for good (the ledger
or the recorder stopped: the server is shutting down) answers its error instead: nothing is
charged, nothing served.

The cost of a call, in micros of the catalog currency, comes back with its answer: a whole
answer carries `x-tollhouse-cost-micros` (what was charged, written before the answer); a
stream ends with the SSE comment `: x-tollhouse-cost-micros=<n>` after the upstream's last
event (SSE parsers skip comments). A call a session pays reports 0. A wallet too short to
pay what the real usage costs beyond the hold is charged less (`uncaptured_micros` on its
usage events), and that lesser amount is reported.

Response headers: `x-tollhouse-request-id`, the call's id (its hold's and usage events'): the
request's `X-Request-Id` unless the client sent its own (an id a client chose never keys a
charge); `x-tollhouse-balance-micros` (available after this call's hold);
`x-tollhouse-hold-id`; `RateLimit-Policy` and `RateLimit` (IETF draft) and
`RateLimit-Limit`/`-Remaining`/`-Reset` (see `tollhouse.ratelimit.fields`); inside a session
`x-tollhouse-session-id`, `x-tollhouse-session-tokens-left` and
`x-tollhouse-session-seconds-left` (after this call for a whole answer, before it for a
stream; a cap the session does not have is left out); `x-tollhouse-credits-low: true` while
the balance this call's hold left is below the customer's low-credit threshold;
`x-tollhouse-upstream`: the catalog upstream that answered (one of the model's fallbacks).
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

from tollhouse.api.deps import bearer_token
from tollhouse.api.in_flight import PRINCIPAL
from tollhouse.api.problems import problem_response, problem_response_at, unexpected_response
from tollhouse.catalog import Usage
from tollhouse.errors import DatabaseUnavailable, TollhouseError, Unauthenticated
from tollhouse.gateway.admission import Admission, admit, check_model_access
from tollhouse.gateway.audio import parse_upload
from tollhouse.gateway.call import (
    ANTHROPIC_PATHS,
    COUNT_TOKENS_PATH,
    ROUTES,
    Call,
    Route,
    wrong_route,
)
from tollhouse.gateway.errors import InvalidRequest
from tollhouse.gateway.estimate import UPLOAD_KINDS, estimate
from tollhouse.gateway.proxy import forward
from tollhouse.gateway.settle import CHARGE_WAIT_SECONDS, charge, finish
from tollhouse.gateway.usage import UsageSource
from tollhouse.ids import new_id
from tollhouse.keys import Principal
from tollhouse.observability import metrics
from tollhouse.observability.context import CURRENT, RequestContext
from tollhouse.ratelimit import headers as rate_headers
from tollhouse.server.runtime import Runtime

ROUTE_BY_PATH = {route.path: route for route in ROUTES}


def parse_body(raw: bytes, default_model: str | None = None) -> dict[str, Any]:
    """The JSON object of a call, with a string `model` (`default_model` when it has none
    and the route has one).

    Raises:
        InvalidRequest: not JSON, not an object, or no `model`.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if default_model is not None and body.get("model") is None:
        body["model"] = default_model
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("'model' must be a non-empty string", param="model")
    return body


@lru_cache(maxsize=256)
def upstream_header(upstream: str | None) -> tuple[bytes, bytes]:
    """The `x-tollhouse-upstream` header naming `upstream` (built once per upstream)."""
    return (b"x-tollhouse-upstream", (upstream or "").encode())


def _headers(request_id: str, admission: Admission, now: datetime) -> list[tuple[bytes, bytes]]:
    headers = [(b"x-tollhouse-request-id", request_id.encode())]
    headers.extend(
        (name.lower().encode(), value.encode())
        for name, value in rate_headers(admission.rate.stats).items()
    )
    hold = admission.hold
    if hold is not None:
        headers.append((b"x-tollhouse-hold-id", hold.id.encode()))
        if hold.available_after_micros is not None:
            headers.append(
                (b"x-tollhouse-balance-micros", str(hold.available_after_micros).encode())
            )
    if admission.credits_low:
        headers.append((b"x-tollhouse-credits-low", b"true"))
    if admission.session is not None:
        headers.extend(
            (name.encode(), value.encode()) for name, value in admission.session.headers(now)
        )
    return headers


ANTHROPIC_PASSED_HEADERS = (b"anthropic-version", b"anthropic-beta")
"""Client headers an Anthropic upstream gets as sent."""


def call_key(scope: Scope) -> str:
    """The tollhouse key a gateway call carries: `Authorization: Bearer`, and on Anthropic's
    routes `x-api-key` first (as the `anthropic` SDK sends it).

    Raises:
        Unauthenticated: no key, or a malformed `Authorization` header.
    """
    anthropic = scope["path"] in ANTHROPIC_PATHS
    authorization = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            authorization = value
        elif anthropic and name == b"x-api-key" and value.strip():
            return str(value.decode("latin-1").strip())
    if anthropic and authorization is None:
        raise Unauthenticated("send your API key as 'x-api-key: th_...' (or as a bearer token)")
    return bearer_token(authorization)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole request body, or None if the client left (`BodyLimit` bounds its size)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def call_model(scope: Scope, receive: Receive, send: Send) -> None:
    """Any of the metered gateway POST routes (OpenAI's and Anthropic's), as a raw ASGI app.

    `create_app`'s app dispatches these POSTs here, behind `api.middleware.BodyLimit` and
    `StringGuard` only, before FastAPI's middleware and routing (the hot path: they cost more
    than the rest of the call). An unexpected error is logged and answered 500, and not
    raised on: the server keeps the connection for the client's next request. A forwarded
    call's time in tollhouse, from its arrival to its answer's head less its upstream time,
    is observed in `tollhouse_gateway_added_latency_seconds`.
    """
    runtime: Runtime = scope["app"].state.runtime
    path: str = scope["path"]
    route: Route = ROUTE_BY_PATH[path]
    content_type = None
    passed: list[tuple[str, str]] = []
    for name, value in scope["headers"]:
        if name == b"content-type":
            content_type = value.decode("latin-1")
        elif name in ANTHROPIC_PASSED_HEADERS and route.protocol == "anthropic":
            passed.append((name.decode(), value.decode("latin-1")))
    context = CURRENT.get() or RequestContext(
        new_id("req"), generated=True, started=time.perf_counter()
    )
    request_id = context.request_id if context.generated else new_id("req")
    started_at = runtime.clock.now()
    principal: Principal | None = scope.get(PRINCIPAL)  # `api.in_flight.InFlightCaps`
    body: dict[str, Any] = {}
    try:
        if principal is None:
            principal = await runtime.authenticator.authenticate(call_key(scope))
        raw = await _read_body(receive)
        if raw is None:
            return
        upload = parse_upload(raw, content_type) if route.kind in UPLOAD_KINDS else None
        body = parse_body(raw, route.default_model) if upload is None else {"model": upload.model}
        model = runtime.catalog.model(body["model"])
        if route.kind not in model.routes:
            raise wrong_route(model, route)
        expected = estimate(route.kind, body, model, upload)
        admission = await admit(
            runtime,
            principal,
            model=model,
            usage=expected.usage,
            request_id=request_id,
        )
        call = Call(
            request_id,
            route,
            principal,
            admission,
            started_at,
            body,
            raw,
            expected.stream,
            passed_headers=tuple(passed),
            upload=upload,
        )
        forwarded = await forward(runtime, call)
    except TollhouseError as error:
        runtime.note_denial(principal, error, model=body.get("model"), route=path)
        await _problem(error, path, route.protocol, request_id)(scope, receive, send)
        return
    except Exception as exc:
        await unexpected_response("POST", path, exc)(scope, receive, send)
        return
    if forwarded.usage is not None and admission.session is not None:
        runtime.sessions.count(admission.session, forwarded.usage[0])  # before the answer
    headers = _headers(request_id, admission, runtime.clock.now())
    headers.append(upstream_header(call.upstream))
    if forwarded.stream is not None:
        metrics.observe_added_latency(
            path, time.perf_counter() - context.started - call.upstream_seconds
        )
        stream = StreamingResponse(forwarded.stream, media_type=forwarded.content_type)
        stream.raw_headers[:0] = [*headers, (b"cache-control", b"no-cache")]
        await stream(scope, receive, send)
        return
    cost = 0
    if forwarded.usage is not None:
        try:
            cost = await _charged(runtime, call, *forwarded.usage)
        except TollhouseError as error:
            await _problem(error, path, route.protocol, request_id)(scope, receive, send)
            return
        except Exception as exc:
            await unexpected_response("POST", path, exc)(scope, receive, send)
            return
    metrics.observe_added_latency(
        path, time.perf_counter() - context.started - call.upstream_seconds
    )
    content_type = forwarded.content_type.encode("latin-1")
    if content_type.startswith(b"text/") and b"charset=" not in content_type.lower():
        content_type += b"; charset=utf-8"
    if forwarded.status >= 200 and forwarded.status not in (204, 304):
        headers.append((b"content-length", str(len(forwarded.content)).encode()))
    headers.append((b"x-tollhouse-cost-micros", str(cost).encode()))
    headers.append((b"content-type", content_type))  # the same headers as Starlette's Response
    try:
        await send({"type": "http.response.start", "status": forwarded.status, "headers": headers})
        await send({"type": "http.response.body", "body": forwarded.content})
    finally:
        if forwarded.usage is not None:
            # The answer is out: the server reads the connection's next request meanwhile.
            await runtime.run_here(
                finish(runtime, call, forwarded.usage[0]), name=f"finish {request_id}"
            )


async def _charged(runtime: Runtime, call: Call, usage: Usage, source: UsageSource) -> int:
    """Charge a whole answer before it is sent (`gateway.settle.charge`, in its own task: a
    server whose shutdown grace ends cancels the request, not its charge); returns what was
    charged, in micros.

    Raises:
        DatabaseUnavailable: the charge was not written within `CHARGE_WAIT_SECONDS` (the
            database fails it): the answer is withheld, the charge goes on until written.
        TollhouseError: the charge's final failure (`charge`): the call is not billed.
    """
    charging = runtime.spawn(charge(runtime, call, usage, source), name=f"charge {call.request_id}")
    try:
        return await asyncio.wait_for(asyncio.shield(charging), CHARGE_WAIT_SECONDS)
    except TimeoutError:
        raise DatabaseUnavailable(
            "the answer is withheld: its charge could not be written in time (the database"
            f" fails it); the call is charged once it is (request {call.request_id})",
            retry_after_seconds=1,
        ) from None


def _problem(error: TollhouseError, path: str, protocol: str, request_id: str) -> Response:
    """A refused or failed call's answer: the problem in OpenAI's error shape (Anthropic's
    for the Messages route), naming the call's request id."""
    response = problem_response(
        error, instance=path, openai_shape=True, anthropic_shape=protocol == "anthropic"
    )
    response.headers["x-tollhouse-request-id"] = request_id
    return response


async def list_models(request: Request) -> Response:
    """`GET /v1/models`: the models this key may call, in OpenAI's list shape."""
    runtime: Runtime = request.app.state.runtime
    try:
        principal = await runtime.authenticator.authenticate(
            bearer_token(request.headers.get("authorization"))
        )
        principal.require("read")
    except TollhouseError as error:
        return problem_response(error, instance=request.url.path, openai_shape=True)
    catalog = runtime.catalog
    data = [
        {
            "id": model.id,
            "object": "model",
            "created": 0,
            "owned_by": model.upstream,
            "category": model.category,
            "routes": [route.path for route in ROUTES if route.kind in model.routes],
        }
        for model in catalog.models.values()
        if model.routes
        and principal.can_use_model(model.id)
        and (principal.is_operator or catalog.can_use(principal.plan, model.id))
    ]
    return Response(orjson.dumps({"object": "list", "data": data}), media_type="application/json")


async def count_message_tokens(request: Request) -> Response:
    """`POST /v1/messages/count_tokens`: `{"input_tokens": n}`, the prompt of a Messages call
    (`messages` and `system`) counted with the model's tokenizer, as its hold's estimate is.

    Authenticated (`x-api-key` or bearer, scope `read`) and checked as a call is (the key and
    the plan may use the model, which is served on `/v1/messages`); nothing is held, limited
    or charged. Errors in Anthropic's shape."""
    runtime: Runtime = request.app.state.runtime
    try:
        principal = await runtime.authenticator.authenticate(call_key(request.scope))
        principal.require("read")
        body = parse_body(await request.body())
        model = runtime.catalog.model(body["model"])
        if principal.customer_id is not None:
            check_model_access(runtime.catalog, principal, model)
        messages = ROUTE_BY_PATH["/v1/messages"]
        if messages.kind not in model.routes:
            raise wrong_route(model, messages)
        tokens = estimate("messages", body, model).usage.input_tokens
    except TollhouseError as error:
        return problem_response_at(error, COUNT_TOKENS_PATH)
    return Response(orjson.dumps({"input_tokens": tokens}), media_type="application/json")


class _CallModel:
    """`call_model` as a route endpoint (Starlette calls an endpoint that is not a function
    as a raw ASGI app)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await call_model(scope, receive, send)


routes = [StarletteRoute(route.path, _CallModel(), methods=["POST"]) for route in ROUTES]
"""Mounted too (`TollhouseApp` dispatches their POSTs first): other methods get FastAPI's 405."""
routes.append(StarletteRoute("/v1/models", list_models, methods=["GET"]))
routes.append(StarletteRoute(COUNT_TOKENS_PATH, count_message_tokens, methods=["POST"]))
