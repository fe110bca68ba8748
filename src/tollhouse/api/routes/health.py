"""Probes for load balancers and orchestrators: `/health` (liveness), `/ready` (readiness).

`/healthz` (in `api.app`) stays as it was: 200 while the process runs, like `/health`.
"""

from __future__ import annotations

from fastapi import APIRouter

from tollhouse.api import problems
from tollhouse.api.deps import RuntimeDep
from tollhouse.api.schemas import ResponseBody
from tollhouse.server.errors import NotReady
from tollhouse.server.health import OK, readiness

router = APIRouter(tags=["health"])


class HealthOut(ResponseBody):
    status: str
    """Always `ok`."""


class ReadyOut(ResponseBody):
    status: str
    """`ready`."""
    checks: dict[str, str]
    """Each check (`database`, `migrations`, and `redis` when configured) and `ok`."""


@router.get("/health")
async def health() -> HealthOut:
    """Liveness: 200 while the process runs; checks nothing else (restart it if this fails)."""
    return HealthOut(status="ok")


@router.get("/ready", responses=problems.responses(503))
async def ready(runtime: RuntimeDep) -> ReadyOut:
    """Readiness: 200 only when the database answers, its migrations are at this build's
    heads and Redis (when configured) answers; else 503 problem+json `not-ready` with every
    check's state in `checks` (see `tollhouse.server.health`)."""
    checks = await readiness(runtime)
    failing = sorted(name for name, state in checks.items() if state != OK)
    if failing:
        raise NotReady(f"not ready: {', '.join(failing)}", checks=checks, retry_after_seconds=1)
    return ReadyOut(status="ready", checks=checks)
