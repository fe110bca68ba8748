"""`GET /metrics`: Prometheus' scrape target (`observability.metrics`), off the OpenAPI document.

Open by default, as Prometheus scrapes without credentials and most deployments keep the port
private: set `TOLLHOUSE_METRICS_TOKEN` to ask for `Authorization: Bearer <token>` (Prometheus'
`authorization` scrape setting sends it), or `TOLLHOUSE_METRICS=false` to not serve it. The
metrics name no customer, key or amount of any one customer: label values are route
templates, model ids, currencies, problem codes and outcomes.

Each scrape also runs the readiness checks (`server.health.readiness`: database, migrations,
Redis) and reports them as `tollhouse_ready`, so alerts see a process that cannot reach its
stores.
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request
from starlette.responses import Response

from tollhouse.api.deps import RuntimeDep
from tollhouse.errors import Unauthenticated
from tollhouse.observability import metrics
from tollhouse.server.health import OK, readiness

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def scrape(request: Request, runtime: RuntimeDep) -> Response:
    """Every metric, in Prometheus' text format (summed over the processes of a `serve
    --workers N`).

    Raises:
        Unauthenticated: `TOLLHOUSE_METRICS_TOKEN` is set and the request does not carry it.
    """
    token = runtime.settings.metrics_token
    if token is not None:
        scheme, _, sent = request.headers.get("authorization", "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), expected):
            raise Unauthenticated("send the metrics token as 'Authorization: Bearer <token>'")
    checks = await readiness(runtime)
    body = metrics.exposition({name: state == OK for name, state in checks.items()})
    return Response(body, media_type=metrics.CONTENT_TYPE)
