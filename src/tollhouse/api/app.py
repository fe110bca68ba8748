"""The ASGI application: control API + gateway routes over one `Runtime`.

`create_app()` builds everything from the environment (`tollhouse serve` uses it); tests pass
their own `Runtime`. The runtime starts and stops with the app's lifespan; an app that built its
own runtime (a served process) also sets up its logging (`observability.logs`), tunes the
garbage collector (`server.heap`) and, on stopping, tells the metrics files it is gone
(`observability.multiprocess`).

Every request passes `api.observed.Observed` first (request id, request metrics); `/metrics`
serves the Prometheus metrics (`api.routes.metrics`) unless `TOLLHOUSE_METRICS=false`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import Receive, Scope, Send

from tollhouse import dashboard
from tollhouse.api import docs, problems
from tollhouse.api.in_flight import InFlightCaps
from tollhouse.api.middleware import AnsweredErrors, BodyLimit, StringGuard
from tollhouse.api.observed import Observed
from tollhouse.api.routes import (
    alerts,
    catalog,
    checkout,
    credits,
    customers,
    events,
    gateway,
    health,
    invoices,
    keys,
    metrics,
    payments,
    sessions,
    sidecar,
    subscriptions,
    usage,
    webhooks,
)
from tollhouse.config import get_settings
from tollhouse.observability import logs, multiprocess
from tollhouse.server.heap import tune_collector
from tollhouse.server.runtime import Runtime

DESCRIPTION = """\
tollhouse: API keys, rate limits, credits and usage in front of AI models.

Authenticate with `Authorization: Bearer th_...` ("Authorize" in `/docs`). Errors are RFC 9457
problem+json with a stable `type`. Money is integer micros (1 USD = 1,000,000). The
OpenAI-compatible gateway routes (tag `gateway`: `/v1/chat/completions`, `/v1/completions`,
`/v1/embeddings`, `/v1/images/generations`, `/v1/audio/speech`, `/v1/audio/transcriptions`,
`/v1/audio/translations`, `/v1/moderations`, `/v1/responses`, `/v1/models`) answer errors in
OpenAI's shape, with the problem members beside it; Anthropic's (`/v1/messages`,
`/v1/messages/count_tokens`, key also in `x-api-key`) in Anthropic's. A whole answer carries
its cost in `x-tollhouse-cost-micros`; a stream ends with the SSE comment
`: x-tollhouse-cost-micros=<n>`.
"""


class TollhouseApp(FastAPI):
    """FastAPI, except that the gateway's POST routes skip its middleware stack and routing:
    they are dispatched by exact path to `routes.gateway.call_model`, a raw ASGI handler
    behind the in-flight caps (`api.in_flight`) and the same `BodyLimit` and `StringGuard`,
    answering the same bytes the route would.
    The rest goes through FastAPI behind `AnsweredErrors`, so that an answered 500 keeps the
    connection. Both pass `Observed` first. The OpenAPI document describes them all the same
    (`api.docs.document`)."""

    def __init__(self, *, max_body_bytes: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.gateway_paths = frozenset(gateway.ROUTE_BY_PATH)
        self.call_model = InFlightCaps(
            BodyLimit(StringGuard(gateway.call_model), max_bytes=max_body_bytes),
            key_of=gateway.call_key,
        )
        self.routed = AnsweredErrors(super().__call__)
        self.observed = Observed(self._dispatch, exact_paths=self.gateway_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.observed(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in self.gateway_paths
        ):
            scope["app"] = self
            await self.call_model(scope, receive, send)
            return
        await self.routed(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI document (`api.docs.document`), built once."""
        if not self.openapi_schema:
            self.openapi_schema = docs.document(self)
        return self.openapi_schema


def _served_runtime() -> Runtime:
    """The runtime of a served process, from the environment's settings, its logging set up."""
    settings = get_settings()
    logs.configure(settings.log_format, settings.log_level)
    return Runtime(settings)


def create_app(runtime: Runtime | None = None) -> FastAPI:
    """The app over `runtime` (default: a served process's, see the module docstring)."""
    serving = runtime is None
    runtime = runtime or _served_runtime()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        if serving:
            tune_collector()
        try:
            yield
        finally:
            await runtime.stop()
            if serving:
                multiprocess.process_exited()

    app = TollhouseApp(
        max_body_bytes=runtime.settings.max_body_bytes,
        title="tollhouse",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    problems.install(app)
    docs.install(app)
    for module in (
        customers,
        keys,
        credits,
        alerts,
        usage,
        sidecar,
        sessions,
        catalog,
        subscriptions,
        events,
        webhooks,
        invoices,
        payments,
        checkout,
        health,
    ):
        app.include_router(module.router)
    if runtime.settings.metrics:
        app.include_router(metrics.router)
    app.router.routes.extend(gateway.routes)
    if runtime.settings.dashboard:
        app.include_router(dashboard.router)
        app.mount("/dashboard/static", StaticFiles(directory=dashboard.STATIC), name="dashboard")

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.add_middleware(StringGuard)
    app.add_middleware(BodyLimit, max_bytes=runtime.settings.max_body_bytes)
    return app
