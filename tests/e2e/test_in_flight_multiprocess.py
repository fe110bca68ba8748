"""In-flight caps shared by two `tollhouse serve` processes on one Redis.

Story: a customer's plan allows 3 calls under way at once. It fires 100 streamed calls, half
at each process, at a model whose upstream holds them open: exactly 3 are served between the
two processes, the other 97 are answered 429. Then a process holding slots is killed
(SIGKILL: no cleanup): its slots stay taken while their leases run, are never freed while a
live process renews them, and free themselves once the dead process's leases run out.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from tests.e2e.test_multiprocess import cluster
from tests.support.catalog import CONCURRENT_MAX_IN_FLIGHT
from tests.support.upstream import FakeUpstream

CALLS = 100
LEASE_SECONDS = 2.0
WAIT_SECONDS = 60.0
"""Bound on anything awaited here (a loaded 2-core machine is slow, never this slow)."""
GATED = {
    "model": "test-chat-gated",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
}
QUICK = {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}


async def post(http: httpx.AsyncClient, url: str, key: str, body: dict[str, Any]) -> int:
    response = await http.post(
        f"{url}/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    return response.status_code


async def eventually(predicate: Any) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


def http_client() -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=CALLS + 10, max_keepalive_connections=CALLS + 10)
    return httpx.AsyncClient(limits=limits, timeout=WAIT_SECONDS)


async def test_two_processes_share_one_cap(
    tmp_path: Path, upstream: FakeUpstream, redis_url: str
) -> None:
    async with cluster(tmp_path, upstream, redis_url) as running:
        _, key = await running.customer(plan="concurrent", credits_micros=10_000_000)
        async with http_client() as http:
            tasks = [
                asyncio.create_task(post(http, running.url(n), key, GATED)) for n in range(CALLS)
            ]
            try:
                await eventually(
                    lambda: sum(task.done() for task in tasks) >= CALLS - CONCURRENT_MAX_IN_FLIGHT
                )
                await eventually(lambda: len(upstream.requests) == CONCURRENT_MAX_IN_FLIGHT)
                refused = [task.result() for task in tasks if task.done()]
                assert Counter(refused) == {429: CALLS - CONCURRENT_MAX_IN_FLIGHT}
            finally:
                upstream.gate.set()
            statuses = Counter(await asyncio.gather(*tasks))
        assert statuses == {200: CONCURRENT_MAX_IN_FLIGHT, 429: CALLS - CONCURRENT_MAX_IN_FLIGHT}


async def test_a_killed_processs_slots_free_after_their_lease(
    tmp_path: Path, upstream: FakeUpstream, redis_url: str
) -> None:
    lease = {"TOLLHOUSE_IN_FLIGHT_LEASE_SECONDS": str(LEASE_SECONDS)}
    async with cluster(tmp_path, upstream, redis_url, **lease) as running:
        _, key = await running.customer(plan="concurrent", credits_micros=10_000_000)
        survivor, doomed = running.servers[0], running.servers[1]
        async with http_client() as http:
            held = [
                asyncio.create_task(post(http, doomed.base_url, key, GATED))
                for _ in range(CONCURRENT_MAX_IN_FLIGHT)
            ]
            try:
                await eventually(lambda: len(upstream.requests) == CONCURRENT_MAX_IN_FLIGHT)
                # Held three leases long: renewed by the holder, never freed meanwhile.
                await asyncio.sleep(3 * LEASE_SECONDS)
                assert await post(http, survivor.base_url, key, QUICK) == 429
                doomed.process.kill()
                await asyncio.to_thread(doomed.process.wait)
                loop = asyncio.get_running_loop()
                killed_at = loop.time()
                answers = []
                while (status := await post(http, survivor.base_url, key, QUICK)) != 200:
                    answers.append(status)
                    assert loop.time() - killed_at < WAIT_SECONDS, answers
                    await asyncio.sleep(0.1)
                assert set(answers) <= {429}
                # Freed by the leases' expiry: within a lease of the kill (plus this machine's
                # slowness), while the same slots held three leases long before it.
                assert loop.time() - killed_at < LEASE_SECONDS + 10
            finally:
                upstream.gate.set()
            await asyncio.gather(*held, return_exceptions=True)
