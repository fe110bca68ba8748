"""Retries, replays and limits over HTTP, as a client that retries on every timeout meets them.

Story: an operator's script grants credits and retries the call; a customer's app reports
usage events and authorizes its own model calls, retrying too. A replay with the same
arguments gets the first answer again and counts against nothing; the same idempotency key
with other arguments is refused with 422 `idempotency-key-reused`, naming what differs, as
the IETF draft "The Idempotency-Key HTTP Header Field" answers it. Token limits count the output a call asks for, and a call refused for
want of credit takes nothing from the rate limits.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.e2e.conftest import Stack, running_stack
from tests.e2e.test_control_api import PROBLEM_JSON, raw
from tests.support.catalog import TEXT_RPM_FREE
from tests.support.server import Api
from tests.support.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, FakeUpstream

from tollhouse.catalog import Usage
from tollhouse.clock import FrozenClock
from tollhouse.gateway.admission import admit, per_minute
from tollhouse.gateway.tokens import count_chat_tokens

TEXT_TOKENS_PER_MINUTE = 1_000_000
"""The test catalog's `text` tokens-per-minute limit (free plan, multiplier 1)."""


@pytest.fixture
async def frozen(
    tmp_path: Path, upstream: FakeUpstream, clock: FrozenClock
) -> AsyncIterator[Stack]:
    """The e2e stack on a clock that stands still, so rate-limit windows do not refill."""
    async with running_stack(tmp_path, upstream, clock=clock) as running:
        yield running


def grant(key: str, **fields: object) -> dict[str, object]:
    return {"amount_micros": 5_000, "idempotency_key": key, **fields}


class TestGrantReplays:
    async def test_the_same_key_and_fields_answer_the_first_grant_with_200(
        self, stack: Stack
    ) -> None:
        customer_id, _ = await stack.customer(credits_micros=0)
        url = f"/v1/customers/{customer_id}/credits/grants"
        before = await stack.available(customer_id)

        first = await raw(stack, stack.operator_key, "POST", url, json=grant("g1"))
        again = await raw(stack, stack.operator_key, "POST", url, json=grant("g1"))

        assert (first.status_code, again.status_code) == (201, 200)
        assert again.json() == first.json()
        assert await stack.available(customer_id) == before + 5_000

    async def test_the_same_key_with_other_fields_is_422_naming_them(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer(credits_micros=0)
        url = f"/v1/customers/{customer_id}/credits/grants"
        await stack.operator.ok("POST", url, json=grant("g1", description="welcome"))
        before = await stack.available(customer_id)

        for changed, fields in [
            ({"description": "other"}, ["description"]),
            (
                {"description": "welcome", "priority": 5, "source": "promotional"},
                ["priority", "source"],
            ),
            ({"description": "welcome", "amount_micros": 6_000}, ["amount"]),
        ]:
            response = await raw(
                stack, stack.operator_key, "POST", url, json={**grant("g1"), **changed}
            )
            assert response.status_code == 422, response.text
            assert response.headers["content-type"] == PROBLEM_JSON
            problem = response.json()
            assert problem["type"].endswith("/idempotency-key-reused")
            assert (problem["status"], problem["fields"]) == (422, fields)
        assert await stack.available(customer_id) == before


class TestUsageEventReplays:
    async def test_a_replayed_id_with_another_value_is_422_and_nothing_is_recorded(
        self, stack: Stack
    ) -> None:
        customer_id, key = await stack.customer()
        event = {"id": "job-1", "meter": "images", "value": 3}
        async with Api(stack.base_url, key) as app:
            await app.ok("POST", "/v1/usage/events", json={"events": [event]})
            replay = await app.ok("POST", "/v1/usage/events", json={"events": [event]})
            assert (replay["accepted"], replay["duplicates"]) == (0, 1)

            changed = {**event, "value": 4}
            fresh = {"id": "job-2", "meter": "images", "value": 1}
            response = await raw(
                stack, key, "POST", "/v1/usage/events", json={"events": [fresh, changed]}
            )

        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["type"].endswith("/idempotency-key-reused")
        assert problem["fields"] == ["value"]
        assert problem["events"] == [{"id": "job-1", "fields": ["value"]}]
        usage = await stack.operator.ok("GET", "/v1/usage", params={"customer_id": customer_id})
        assert {b["meter"]: b["value"] for b in usage["buckets"]}["images"] == 3


class TestAuthorizeReplays:
    async def test_a_retry_returns_the_first_hold_without_taking_rate_limit_again(
        self, stack: Stack
    ) -> None:
        customer_id, key = await stack.customer()
        body = {"model": "test-chat", "usage": {"input_tokens": 10}, "idempotency_key": "call-1"}
        async with Api(stack.base_url, key) as app:
            first = await app.ok("POST", "/v1/authorize", json=body)
            for _ in range(2 * TEXT_RPM_FREE):
                response = await raw(stack, key, "POST", "/v1/authorize", json=body)
                assert response.status_code == 200, response.text
                assert response.headers["Idempotent-Replayed"] == "true"
                assert response.json()["hold"] == first["hold"]
            # the free plan's other TEXT_RPM_FREE - 1 text requests this minute still pass
            for n in range(TEXT_RPM_FREE - 1):
                fresh = {**body, "idempotency_key": f"other-{n}"}
                assert (await app.ok("POST", "/v1/authorize", json=fresh))["allowed"]
        assert (await stack.operator.ok("GET", f"/v1/customers/{customer_id}/balance"))[
            "held_micros"
        ] == 10 * TEXT_RPM_FREE

    async def test_the_same_key_for_another_estimate_is_422(self, stack: Stack) -> None:
        _, key = await stack.customer()
        body = {"model": "test-chat", "usage": {"input_tokens": 10}, "idempotency_key": "call-1"}
        async with Api(stack.base_url, key) as app:
            await app.ok("POST", "/v1/authorize", json=body)
        response = await raw(
            stack, key, "POST", "/v1/authorize", json={**body, "usage": {"input_tokens": 11}}
        )
        assert response.status_code == 422
        assert response.json()["fields"] == ["usage"]


class TestLimits:
    async def test_a_call_whose_tokens_alone_exceed_the_limit_is_422(self, stack: Stack) -> None:
        _, key = await stack.customer(credits_micros=10_000_000)
        usage = {"input_tokens": TEXT_TOKENS_PER_MINUTE - 10, "output_tokens": 20}
        response = await raw(
            stack, key, "POST", "/v1/authorize", json={"model": "test-chat", "usage": usage}
        )
        assert response.status_code == 422, response.text
        problem = response.json()
        assert problem["type"].endswith("/rate-limit-cost-too-large")
        assert (problem["cost"], problem["limit"]) == (
            TEXT_TOKENS_PER_MINUTE + 10,
            TEXT_TOKENS_PER_MINUTE,
        )

    async def test_calls_refused_for_credit_take_nothing_from_the_rate_limit(
        self, stack: Stack
    ) -> None:
        _, key = await stack.customer(credits_micros=1_000_000)
        # 1,000,001 micros: a micro more than the wallet has
        dear = {"model": "test-chat", "usage": {"input_tokens": 999_999, "output_tokens": 1}}
        for _ in range(TEXT_RPM_FREE + 1):
            response = await raw(stack, key, "POST", "/v1/authorize", json=dear)
            assert response.status_code == 402, response.text
        cheap = {"model": "test-chat", "usage": {"input_tokens": 1}}
        async with Api(stack.base_url, key) as app:
            for _ in range(TEXT_RPM_FREE):
                assert (await app.ok("POST", "/v1/authorize", json=cheap))["allowed"]

    async def test_the_token_window_takes_the_estimate_then_the_real_usage(
        self, frozen: Stack, clock: FrozenClock
    ) -> None:
        """With time stopped: during the call the window holds the prompt and the asked-for
        output (90 tokens); after it, exactly what the upstream reported."""
        customer_id, key = await frozen.customer()
        window = (per_minute(TEXT_TOKENS_PER_MINUTE, "text", "tpm"), f"{customer_id}:text:tpm", 0)
        body = {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}
        async with Api(frozen.base_url, key) as app:
            await app.ok("POST", "/v1/chat/completions", json={**body, "max_tokens": 90})
            await frozen.runtime.drain()
            settled = (await frozen.runtime.limiter.test_all([window])).stats[0]
            assert settled.remaining == TEXT_TOKENS_PER_MINUTE - (PROMPT_TOKENS + COMPLETION_TOKENS)

            model = frozen.runtime.catalog.model("test-chat")
            prompt = count_chat_tokens(body["messages"], model.tokenizer)
            admission = await admit(
                frozen.runtime,
                await frozen.runtime.authenticator.authenticate(key),
                model=model,
                usage=Usage(input_tokens=prompt, output_tokens=90),
                request_id="req_test",
            )
            assert admission.tokens == (window[0], window[1], prompt + 90)
            during = (await frozen.runtime.limiter.test_all([window])).stats[0]
            assert during.remaining == settled.remaining - prompt - 90


class TestProblemMembers:
    async def test_voiding_a_captured_hold_keeps_the_http_status_in_status(
        self, stack: Stack
    ) -> None:
        _, key = await stack.customer()
        async with Api(stack.base_url, key) as app:
            decision = await app.ok(
                "POST", "/v1/authorize", json={"model": "test-chat", "usage": {"input_tokens": 5}}
            )
            hold_id = decision["hold"]["id"]
            await app.ok("POST", f"/v1/holds/{hold_id}/capture", json={"amount_micros": 1})
        response = await raw(stack, key, "POST", f"/v1/holds/{hold_id}/void")
        problem = response.json()
        assert (response.status_code, problem["status"]) == (409, 409)
        assert problem["hold_status"] == "captured"
