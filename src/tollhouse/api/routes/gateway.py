"""The OpenAI-compatible gateway routes (plain Starlette endpoints: the hot path).

Each call: authenticate -> parse -> model -> estimate -> admit (scope, access, rate limit,
hold) -> forward -> answer; settlement runs after the answer (gateway/proxy.py). Denials come
before the upstream is called. Errors use OpenAI's error shape with problem+json members.

Response headers: `x-tollhouse-request-id`; `x-tollhouse-balance-micros` (available after this
call's hold); `x-tollhouse-hold-id`; `RateLimit-Limit`/`-Remaining`/`-Reset`.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route as StarletteRoute

from tollhouse.api.deps import bearer_token
from tollhouse.api.problems import problem_response
from tollhouse.errors import TollhouseError
from tollhouse.gateway.admission import Admission, admit
from tollhouse.gateway.errors import InvalidRequest
from tollhouse.gateway.estimate import estimate
from tollhouse.gateway.proxy import ROUTES, Call, Route, forward
from tollhouse.ids import new_id
from tollhouse.ratelimit import headers as rate_headers
from tollhouse.server.runtime import Runtime

ROUTE_BY_PATH = {route.path: route for route in ROUTES}


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object of a call, with a string `model`.

    Raises:
        InvalidRequest: not JSON, not an object, or no `model`.
    """
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidRequest("the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise InvalidRequest("'model' must be a non-empty string", param="model")
    return body


def _headers(request_id: str, admission: Admission) -> dict[str, str]:
    headers = {"x-tollhouse-request-id": request_id}
    headers.update(rate_headers(admission.rate.stats))
    if admission.hold is not None:
        headers["x-tollhouse-hold-id"] = admission.hold.id
        if admission.hold.available_after_micros is not None:
            headers["x-tollhouse-balance-micros"] = str(admission.hold.available_after_micros)
    return headers


async def call_model(request: Request) -> Response:
    """Any of the metered OpenAI-compatible POST routes."""
    runtime: Runtime = request.app.state.runtime
    route: Route = ROUTE_BY_PATH[request.url.path]
    request_id = new_id("req")
    started_at = runtime.clock.now()
    try:
        principal = await runtime.authenticator.authenticate(bearer_token(request))
        raw = await request.body()
        body = parse_body(raw)
        model = runtime.catalog.model(body["model"])
        expected = estimate(route.kind, body, model)
        admission = await admit(
            runtime, principal, model=model, usage=expected.usage, request_id=request_id
        )
        call = Call(
            request_id, route, principal, admission, started_at, body, raw, expected.stream
        )
        forwarded = await forward(runtime, call)
    except TollhouseError as error:
        response = problem_response(error, instance=request.url.path, openai_shape=True)
        response.headers["x-tollhouse-request-id"] = request_id
        return response
    headers = _headers(request_id, admission)
    if forwarded.stream is not None:
        headers["Cache-Control"] = "no-cache"
        return StreamingResponse(
            forwarded.stream, media_type=forwarded.content_type, headers=headers
        )
    return Response(
        forwarded.content,
        status_code=forwarded.status,
        media_type=forwarded.content_type,
        headers=headers,
    )


async def list_models(request: Request) -> Response:
    """`GET /v1/models`: the models this key may call, in OpenAI's list shape."""
    runtime: Runtime = request.app.state.runtime
    try:
        principal = await runtime.authenticator.authenticate(bearer_token(request))
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
        }
        for model in catalog.models.values()
        if principal.can_use_model(model.id)
        and (principal.is_operator or catalog.can_use(principal.plan, model.id))
    ]
    return Response(
        orjson.dumps({"object": "list", "data": data}), media_type="application/json"
    )


routes = [StarletteRoute(route.path, call_model, methods=["POST"]) for route in ROUTES]
routes.append(StarletteRoute("/v1/models", list_models, methods=["GET"]))
