"""In-flight caps through HTTP, one process (the in-memory limiter).

Story: a customer's plan allows 3 gateway calls under way at once; another customer's key was
issued with a cap of 2. Each fires 100 streamed chat completions at once at a model whose
upstream holds every stream open until the test lets it go: exactly the cap is served, the
other calls are answered 429 `in-flight-limit` with `Retry-After` before anything is held,
and once the held streams end, calls pass again. A client that walks away mid-stream gives
its slot back.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import httpx
import openai
import pytest
from tests.e2e.conftest import Stack
from tests.support.catalog import CONCURRENT_MAX_IN_FLIGHT

from tollhouse.ratelimit import Cap, InFlightLimiter, MemoryStorage, TooManyInFlight

CALLS = 100
KEY_MAX_IN_FLIGHT = 2
WAIT_SECONDS = 60.0
"""Bound on anything awaited here (a loaded 2-core machine is slow, never this slow)."""
GATED = {
    "model": "test-chat-gated",
    "messages": [{"role": "user", "content": "hi"}],
    "stream": True,
}


async def call(http: httpx.AsyncClient, key: str, body: dict[str, Any]) -> httpx.Response:
    """One gateway call, read to its end (a gated stream: once the gate opens)."""
    response = await http.post(
        "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}
    )
    return response


async def eventually(predicate: Any) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_SECONDS
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def burst(stack: Stack, key: str, cap: int) -> None:
    """Fire CALLS gated streams at once: exactly `cap` are served once the gate opens, the
    rest are refused 429 while the served ones are under way."""
    limits = httpx.Limits(max_connections=CALLS + 10, max_keepalive_connections=CALLS + 10)
    async with httpx.AsyncClient(
        base_url=stack.base_url, limits=limits, timeout=WAIT_SECONDS
    ) as http:
        tasks = [asyncio.create_task(call(http, key, GATED)) for _ in range(CALLS)]
        try:
            await eventually(lambda: sum(task.done() for task in tasks) >= CALLS - cap)
            assert sum(task.done() for task in tasks) == CALLS - cap  # the cap is under way
            refused = [task.result() for task in tasks if task.done()]
            assert {response.status_code for response in refused} == {429}
            for response in refused:
                assert response.headers["Retry-After"] == "1"
                assert response.json()["error"]["code"] == "in-flight-limit"
                assert response.json()["error"]["type"] == "rate_limit_error"
            await eventually(lambda: len(stack.upstream.requests) == cap)  # held there
            assert sum(task.done() for task in tasks) == CALLS - cap
        finally:
            stack.upstream.gate.set()
        answers = await asyncio.gather(*tasks)
    statuses = Counter(response.status_code for response in answers)
    assert statuses == {200: cap, 429: CALLS - cap}
    served = [response for response in answers if response.status_code == 200]
    assert all("data: [DONE]" in response.text for response in served)  # then the cost comment


class TestCaps:
    async def test_plan_cap_serves_exactly_that_many_of_100(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(plan="concurrent", credits_micros=10_000_000)
        await burst(stack, key, CONCURRENT_MAX_IN_FLIGHT)
        # The refused calls held nothing and were never recorded: only the served ones.
        await stack.runtime.drain()
        usage = await stack.operator.ok("GET", "/v1/usage", params={"customer_id": customer_id})
        calls = {b["meter"]: b["value"] for b in usage["buckets"]}["api_calls"]
        assert calls == CONCURRENT_MAX_IN_FLIGHT

    async def test_key_cap_serves_exactly_that_many_of_100(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer(plan="lifetime", credits_micros=10_000_000)
        issued = await stack.operator.ok(
            "POST", f"/v1/customers/{customer_id}/keys", json={"max_in_flight": KEY_MAX_IN_FLIGHT}
        )
        assert issued["max_in_flight"] == KEY_MAX_IN_FLIGHT
        await burst(stack, issued["key"], KEY_MAX_IN_FLIGHT)

    async def test_slots_are_given_back_after_completion(self, stack: Stack) -> None:
        _, key = await stack.customer(plan="concurrent", credits_micros=10_000_000)
        client = openai.AsyncOpenAI(api_key=key, base_url=stack.base_url + "/v1", max_retries=0)
        for _ in range(3 * CONCURRENT_MAX_IN_FLIGHT):  # one after the other: never at the cap
            await client.chat.completions.create(
                model="test-chat", messages=[{"role": "user", "content": "hi"}]
            )

    async def test_a_client_gone_mid_stream_gives_its_slot_back(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer(plan="lifetime", credits_micros=10_000_000)
        issued = await stack.operator.ok(
            "POST", f"/v1/customers/{customer_id}/keys", json={"max_in_flight": 1}
        )
        key = issued["key"]
        headers = {"Authorization": f"Bearer {key}"}
        try:
            async with httpx.AsyncClient(base_url=stack.base_url, timeout=WAIT_SECONDS) as http:
                async with http.stream(
                    "POST", "/v1/chat/completions", json=GATED, headers=headers
                ) as held:
                    assert held.status_code == 200
                    async for _ in held.aiter_raw():  # the first chunk: the stream is under way
                        break
                    refused = await call(http, key, GATED)
                    assert refused.status_code == 429
                # The block closed the connection mid-stream, the upstream still holding it.
            async with httpx.AsyncClient(base_url=stack.base_url, timeout=WAIT_SECONDS) as http:
                body = {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}
                answers: list[int] = []

                async def served() -> bool:
                    answers.append((await call(http, key, body)).status_code)
                    return answers[-1] == 200

                loop = asyncio.get_running_loop()
                deadline = loop.time() + WAIT_SECONDS
                while not await served():
                    assert loop.time() < deadline, answers
                    await asyncio.sleep(0.05)
                assert set(answers) <= {200, 429}
        finally:
            stack.upstream.gate.set()

    async def test_operator_sees_the_caps(self, stack: Stack) -> None:
        catalog = await stack.operator.ok("GET", "/v1/catalog")
        by_name = {plan["name"]: plan for plan in catalog["plans"]}
        assert by_name["concurrent"]["max_in_flight"] == CONCURRENT_MAX_IN_FLIGHT
        assert by_name["free"]["max_in_flight"] is None
        customer_id, _ = await stack.customer()
        capped = await stack.operator.ok(
            "POST", f"/v1/customers/{customer_id}/keys", json={"max_in_flight": 2}
        )
        shown = await stack.operator.ok("GET", f"/v1/keys/{capped['id']}")
        assert shown["max_in_flight"] == 2


class TestLimiter:
    """The limiter itself, in memory (the Redis one runs in test_in_flight_multiprocess)."""

    async def test_refusal_names_the_full_cap_and_takes_nothing(self) -> None:
        limiter = InFlightLimiter(MemoryStorage())
        key_cap, customer_cap = Cap("api-key", "k", 5), Cap("customer", "c", 1)
        first = await limiter.acquire([key_cap, customer_cap])
        with pytest.raises(TooManyInFlight) as refused:
            await limiter.acquire([key_cap, customer_cap])
        assert (refused.value.extra["subject"], refused.value.extra["limit"]) == ("customer", 1)
        # The refused call took no slot under the key's cap either: 4 more fit there.
        others = [await limiter.acquire([key_cap]) for _ in range(4)]
        with pytest.raises(TooManyInFlight):
            await limiter.acquire([key_cap])
        await limiter.release(first)
        await limiter.acquire([customer_cap])
        for lease in others:
            await limiter.release(lease)
