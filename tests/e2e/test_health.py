"""`/health` (liveness) and `/ready` (readiness) as a load balancer or Kubernetes probes them.

Story: the operator points the liveness probe at `/health` and the readiness probe at `/ready`.
`/health` answers 200 while the process runs. `/ready` answers 200 only while the database
answers, its schema is at this build's migration heads and (when configured) Redis answers;
otherwise 503 problem+json naming what is not ready, so traffic goes elsewhere until it is.
"""

from __future__ import annotations

from pathlib import Path

import httpx
from sqlalchemy import text
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import Stack
from tests.e2e.test_redis_outage import stack_on
from tests.support.redis_server import own_redis
from tests.support.server import serve
from tests.support.upstream import FakeUpstream

from tollhouse.config import Settings
from tollhouse.server.runtime import Runtime

PROBLEM_JSON = "application/problem+json"


async def probe(base_url: str, path: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        return await http.get(path)


async def test_health_answers_while_the_process_runs(stack: Stack) -> None:
    response = await probe(stack.base_url, "/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_the_database_answers_and_is_migrated(stack: Stack) -> None:
    response = await probe(stack.base_url, "/ready")

    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ready",
        "checks": {"database": "ok", "migrations": "ok"},
    }


async def test_not_ready_while_the_schema_lacks_a_migration(stack: Stack) -> None:
    missing = "metering_0004"  # the head of its branch, which no other revision depends on
    async with stack.runtime.db.transaction() as session:
        await session.execute(
            text("DELETE FROM alembic_version WHERE version_num = :v"), {"v": missing}
        )

    response = await probe(stack.base_url, "/ready")

    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM_JSON
    body = response.json()
    assert body["type"].endswith("/not-ready")
    assert body["checks"]["database"] == "ok"
    assert missing in body["checks"]["migrations"]
    assert "migrations" in body["detail"]
    assert response.headers["Retry-After"] == "1"


async def test_not_ready_while_redis_is_down_and_ready_again_after(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    async with own_redis() as redis, stack_on(tmp_path, upstream, redis, "fail-open") as stack:
        ready = await probe(stack.base_url, "/ready")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": "ok", "migrations": "ok", "redis": "ok"}

        await redis.stop()
        down = await probe(stack.base_url, "/ready")
        alive = await probe(stack.base_url, "/health")

        assert down.status_code == 503
        assert down.json()["checks"]["redis"].startswith("unreachable")
        assert down.json()["checks"]["database"] == "ok"
        assert alive.status_code == 200

        await redis.start()
        assert (await probe(stack.base_url, "/ready")).status_code == 200


async def test_not_ready_when_the_database_is_gone(tmp_path: Path) -> None:
    url = await create_postgres_database()
    settings = Settings(database_url=url, _env_file=None)  # type: ignore[call-arg]
    dropped = False
    try:
        async with serve(Runtime(settings)) as served:
            assert (await probe(served.base_url, "/ready")).status_code == 200

            await drop_postgres_database(url)
            dropped = True
            response = await probe(served.base_url, "/ready")

            assert response.status_code == 503
            assert response.json()["checks"]["database"].startswith("unreachable")
            assert (await probe(served.base_url, "/health")).status_code == 200
    finally:
        if not dropped:
            await drop_postgres_database(url)
