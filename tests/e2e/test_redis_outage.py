"""Redis goes down and comes back: billable calls follow TOLLHOUSE_REDIS_FAILURE_POLICY.

Story: an operator runs tollhouse with Redis for shared rate limits. Redis (a server of this
test's own, never the shared one) is stopped under it, then started again:

- `fail-closed` (the default): while Redis is down, billable calls answer 503 problem+json
  with `Retry-After`, before the upstream is called; once it is back, calls pass again.
- A stream admitted before Redis stops ends normally and is charged and counted in full; only
  its token window cannot be settled (one warning, no error).
- `fail-open`: calls keep passing, rate limited by this process alone, and one warning (not
  one per call) says so; once Redis is back, decisions are made in Redis again.
- A process started while Redis is down comes up, serves by its policy, and attaches when
  Redis returns: its rate limits go to Redis, and it hears invalidations on the channel again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis
from tests.e2e.conftest import UPSTREAM_TIMEOUT_SECONDS, Stack
from tests.support.catalog import TEXT_RPM_FREE, write_catalog
from tests.support.redis_server import RedisServer, own_redis
from tests.support.server import Api, serve
from tests.support.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, FakeUpstream

from tollhouse.config import Settings
from tollhouse.keys import service as keys
from tollhouse.server.bootstrap import bootstrap
from tollhouse.server.invalidation import CHANNEL, key_message
from tollhouse.server.runtime import Runtime

RECOVERY_SECONDS = 15.0
"""Bound on waiting for the process to use Redis again (it retries every second)."""
CHAT = {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}
FAILOVER_LOGGER = "tollhouse.ratelimit.storage.failover"


@asynccontextmanager
async def stack_on(
    tmp_path: Path, upstream: FakeUpstream, redis: RedisServer, policy: str
) -> AsyncIterator[Stack]:
    """A served runtime with `redis` for rate limits and invalidations, under `policy`."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'th.db'}",
        catalog=write_catalog(tmp_path, upstream.base_url),
        redis_url=redis.url,
        redis_failure_policy=policy,
        upstream_timeout_seconds=UPSTREAM_TIMEOUT_SECONDS,
        _env_file=None,  # type: ignore[call-arg]
    )
    operator_key = await bootstrap(settings)
    assert operator_key is not None
    async with serve(Runtime(settings)) as served:
        async with Api(served.base_url, operator_key) as operator:
            yield Stack(served.base_url, served.runtime, upstream, operator_key, operator)


async def eventually(check: Callable[[], Awaitable[bool]]) -> bool:
    """Poll `check()` every 50 ms until it is true or RECOVERY_SECONDS passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RECOVERY_SECONDS
    while not await check():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def rate_limit_keys(redis: RedisServer) -> list[bytes]:
    client = aioredis.Redis.from_url(redis.url)
    try:
        return list(await client.keys("th:rl:*"))
    finally:
        await client.aclose()


def chat(stack: Stack, key: str) -> Callable[[], Awaitable[httpx.Response]]:
    async def call() -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.post(
                f"{stack.base_url}/v1/chat/completions",
                json=CHAT,
                headers={"Authorization": f"Bearer {key}"},
            )

    return call


async def test_fail_closed_refuses_billable_calls_with_503_until_redis_returns(
    tmp_path: Path, upstream: FakeUpstream
) -> None:
    async with own_redis() as redis, stack_on(tmp_path, upstream, redis, "fail-closed") as stack:
        _, key = await stack.customer()
        call = chat(stack, key)
        assert (await call()).status_code == 200

        await redis.stop()
        refused = [await call() for _ in range(3)]

        for response in refused:
            assert response.status_code == 503, response.text
            assert response.json()["type"].endswith("/rate-limit-unavailable")
            assert response.headers["Retry-After"] == "1"
        assert len(upstream.requests) == 1

        await redis.start()

        async def passes() -> bool:
            return (await call()).status_code == 200

        assert await eventually(passes)
        assert await rate_limit_keys(redis) != []  # decided in the restarted Redis


async def test_fail_open_limits_in_process_with_one_warning_then_returns_to_redis(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    async with own_redis() as redis, stack_on(tmp_path, upstream, redis, "fail-open") as stack:
        _, key = await stack.customer()
        call = chat(stack, key)
        await redis.stop()

        with caplog.at_level(logging.WARNING, logger=FAILOVER_LOGGER):
            statuses = [(await call()).status_code for _ in range(TEXT_RPM_FREE + 1)]

        # the in-process limiter starts empty: a full burst, then 429
        assert statuses == [200] * TEXT_RPM_FREE + [429]
        outage = [r for r in caplog.records if r.name == FAILOVER_LOGGER]
        assert len(outage) == 1
        assert "fail-open" in outage[0].getMessage()

        await redis.start()

        async def in_redis() -> bool:
            await call()
            return await rate_limit_keys(redis) != []

        assert await eventually(in_redis)
        failover = [r for r in caplog.records if r.name == FAILOVER_LOGGER]
        assert "answers again" in failover[-1].getMessage()


async def test_a_call_admitted_before_the_outage_is_charged_in_full_during_it(
    tmp_path: Path, upstream: FakeUpstream, caplog: pytest.LogCaptureFixture
) -> None:
    """Fail-closed: Redis stops while a stream is being served. The call ends, is charged at
    its real usage and counted, with one warning that its token window was not settled (it
    cannot be, while Redis is down), and no error."""
    async with own_redis() as redis, stack_on(tmp_path, upstream, redis, "fail-closed") as stack:
        customer_id, key = await stack.customer()
        before = await stack.available(customer_id)
        stream = {**CHAT, "model": "test-chat-slow-stream", "stream": True}
        with caplog.at_level(logging.WARNING):
            async with httpx.AsyncClient(timeout=30) as http:
                async with http.stream(
                    "POST", f"{stack.base_url}/v1/chat/completions", json=stream, headers=_as(key)
                ) as response:
                    chunks = response.aiter_bytes()
                    await anext(chunks)
                    await redis.stop()
                    rest = b"".join([chunk async for chunk in chunks])
            after = await stack.available(customer_id)
            usage = await stack.operator.ok("GET", "/v1/usage", params={"customer_id": customer_id})

    assert response.status_code == 200
    assert b"data: [DONE]" in rest
    assert before - after == PROMPT_TOKENS * 1 + COMPLETION_TOKENS * 2  # $1 and $2 per 1M
    counted = {bucket["meter"]: bucket["value"] for bucket in usage["buckets"]}
    assert counted["api_calls"] == 1
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    unsettled = [r.getMessage() for r in caplog.records if "token window" in r.getMessage()]
    assert len(unsettled) == 1


@pytest.mark.parametrize(("policy", "status"), [("fail-closed", 503), ("fail-open", 200)])
async def test_process_started_while_redis_is_down_serves_then_attaches(
    tmp_path: Path, upstream: FakeUpstream, policy: str, status: int
) -> None:
    async with own_redis() as redis:
        await redis.stop()
        async with stack_on(tmp_path, upstream, redis, policy) as stack:
            _, key = await stack.customer()
            call = chat(stack, key)
            health = await stack.operator.client.get("/health")
            assert health.status_code == 200
            assert (await call()).status_code == status

            await redis.start()

            async def in_redis() -> bool:
                response = await call()
                return response.status_code == 200 and await rate_limit_keys(redis) != []

            assert await eventually(in_redis)
            invalidations = stack.runtime.invalidations

            async def subscribed() -> bool:
                return invalidations.subscribed.is_set()

            assert await eventually(subscribed)
            await revoked_through_the_channel_only(stack, redis, key)


async def revoked_through_the_channel_only(stack: Stack, redis: RedisServer, key: str) -> None:
    """Revoke `key` in the database without a log row, and publish on the channel: only the
    Redis subscription can make this process refuse the key before its cache TTL."""
    key_id = (await stack.operator.ok("GET", "/v1/customers/me/keys", headers=_as(key)))[0]["id"]
    async with stack.runtime.db.transaction() as session:
        await keys.revoke_key(session, key_id, clock=stack.runtime.clock)
    client = aioredis.Redis.from_url(redis.url)
    try:
        await client.publish(CHANNEL, key_message(key_id))
    finally:
        await client.aclose()

    async def refused() -> bool:
        response = await stack.operator.client.get("/v1/customers/me", headers=_as(key))
        return response.status_code == 401

    assert await eventually(refused)


def _as(key: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {key}"}
