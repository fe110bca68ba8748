"""End-to-end fixtures: the FakeUpstream, a migrated SQLite file, the real server, an operator."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tests.support.catalog import write_catalog
from tests.support.server import Api, serve
from tests.support.upstream import FakeUpstream

from tollhouse.clock import SYSTEM_CLOCK, Clock
from tollhouse.config import Settings
from tollhouse.server.bootstrap import bootstrap
from tollhouse.server.runtime import Runtime

UPSTREAM_TIMEOUT_SECONDS = 1.0


@dataclass
class Stack:
    """A running tollhouse in front of a FakeUpstream, plus an operator API client."""

    base_url: str
    runtime: Runtime
    upstream: FakeUpstream
    operator_key: str
    operator: Api

    async def customer(
        self, *, plan: str = "free", credits_micros: int = 1_000_000
    ) -> tuple[str, str]:
        """A new customer on `plan` with `credits_micros` of credits; returns (id, key)."""
        customer = await self.operator.ok("POST", "/v1/customers", json={"name": "c", "plan": plan})
        if credits_micros:
            await self.operator.ok(
                "POST",
                f"/v1/customers/{customer['id']}/credits/grants",
                json={"amount_micros": credits_micros, "idempotency_key": f"seed-{customer['id']}"},
            )
        key = await self.operator.ok("POST", f"/v1/customers/{customer['id']}/keys", json={})
        return customer["id"], key["key"]

    async def available(self, customer_id: str) -> int:
        await self.runtime.drain()
        balance = await self.operator.ok("GET", f"/v1/customers/{customer_id}/balance")
        return int(balance["available_micros"])


@pytest.fixture
async def upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream(slow_seconds=3 * UPSTREAM_TIMEOUT_SECONDS)
    await fake.start()
    yield fake
    await fake.stop()


@asynccontextmanager
async def running_stack(
    directory: Path,
    upstream: FakeUpstream,
    *,
    database_url: str | None = None,
    clock: Clock = SYSTEM_CLOCK,
    catalog: Path | None = None,
    **more_settings: Any,
) -> AsyncIterator[Stack]:
    """tollhouse served in front of `upstream`, on `database_url` (default: a SQLite file in
    `directory`) and `clock`, with its operator's client; `catalog` is the catalog file
    (default: the test catalog in front of `upstream`); `more_settings` are further
    `Settings` fields (Stripe's, for instance)."""
    settings = Settings(
        database_url=database_url or f"sqlite+aiosqlite:///{directory / 'th.db'}",
        catalog=catalog or write_catalog(directory, upstream.base_url),
        upstream_timeout_seconds=UPSTREAM_TIMEOUT_SECONDS,
        max_body_bytes=64 * 1024,
        _env_file=None,  # type: ignore[call-arg]
        **more_settings,
    )
    operator_key = await bootstrap(settings, clock=clock)
    assert operator_key is not None
    async with serve(Runtime(settings, clock=clock)) as served:
        async with Api(served.base_url, operator_key) as operator:
            yield Stack(served.base_url, served.runtime, upstream, operator_key, operator)


@pytest.fixture
async def stack(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Stack]:
    async with running_stack(tmp_path, upstream) as running:
        yield running
