"""The FastAPI dependency: `Depends(requires(toll, model=...))` authorizes the caller's unit
of work before the endpoint runs and hands it the `Work`; `TollMiddleware` (added by
`install`) settles it after the response.

```python
toll = LocalToll(runtime)
app = FastAPI(lifespan=...)          # starts and stops `runtime`
install(app, toll)

@app.post("/v1/indicators")
async def indicators(work: Work = requires(toll, model="indicators")) -> dict[str, object]:
    work.use(input_tokens=812, output_tokens=95)     # what it really used
    return {"rsi": 61.2, "session_id": work.session_id}
```
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Depends, FastAPI, Request
from starlette.responses import Response

from tollhouse.errors import TollhouseError
from tollhouse.integrations.asgi import (
    WORKS,
    TollMiddleware,
    caller_key,
    denial_response,
    idempotency_key,
)
from tollhouse.integrations.toll import Requirement, Toll, Work
from tollhouse.sdk.errors import APIStatusError


def install(app: FastAPI, toll: Toll) -> None:
    """Add `TollMiddleware` (settles works) and answer denials (`TollhouseError` here,
    the SDK's `APIStatusError` from a remote tollhouse) as tollhouse's problem+json."""

    async def problem(request: Request, error: Exception) -> Response:
        assert isinstance(error, TollhouseError | APIStatusError)
        return denial_response(error, request.url.path)

    app.add_middleware(TollMiddleware, toll=toll)
    app.add_exception_handler(TollhouseError, problem)
    app.add_exception_handler(APIStatusError, problem)


async def authorize(request: Request, toll: Toll, requirement: Requirement) -> Work:
    """Authorize `requirement` for the request's key (bearer or `x-api-key`; its
    `Idempotency-Key` header, if any, makes a retry find the first hold) inside an endpoint,
    when what to hold depends on the request (a batch of N items); settled after the
    response like a `requires` work.

    Raises:
        TollhouseError: the denial (problem+json via `install`).
        RuntimeError: the app has no `TollMiddleware` (call `install`).
    """
    works: list[Work] | None = request.scope.get(WORKS)
    if works is None:
        raise RuntimeError("tollhouse: call integrations.install(app, toll) first")
    work = await toll.authorize(
        caller_key(request.scope), requirement, idempotency_key=idempotency_key(request.scope)
    )
    works.append(work)
    return work


def requires(
    toll: Toll,
    *,
    model: str,
    usage: Mapping[str, int] | None = None,
    features: Sequence[str] = (),
    resource_tier: str | None = None,
) -> Any:
    """A dependency that `authorize`s a fixed `Requirement` before the endpoint runs and
    hands it the `Work`; `usage` defaults to one request."""
    requirement = Requirement(
        model=model, usage=dict(usage or {"requests": 1}), features=tuple(features),
        resource_tier=resource_tier,
    )  # fmt: skip

    async def authorized(request: Request) -> Work:
        return await authorize(request, toll, requirement)

    return Depends(authorized)
