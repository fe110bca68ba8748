"""The gateway through the real `openai` SDK, against the FakeUpstream.

Story: an operator creates a customer with credits and a key; the customer points the official
OpenAI client at tollhouse and calls models. Each call is authenticated, rate limited, held,
forwarded, charged at the upstream's real usage, and recorded as usage events.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import openai
import pytest
from sqlalchemy import select
from tests.e2e.conftest import Stack
from tests.support.catalog import (
    IMAGE_MICROS,
    INPUT_MICROS_PER_TOKEN,
    OUTPUT_MICROS_PER_TOKEN,
    TEXT_RPM_FREE,
    TTS_MICROS_PER_CHARACTER,
)
from tests.support.upstream import ANSWER, COMPLETION_TOKENS, PROMPT_TOKENS

from tollhouse.api.routes import gateway as gateway_routes
from tollhouse.gateway import settle as settle_module
from tollhouse.gateway.tokens import count_tokens
from tollhouse.ledger import HoldView
from tollhouse.metering import MeteringUnavailable, RecordResult
from tollhouse.metering.models import UsageEvent

CHAT_COST_MICROS = (
    PROMPT_TOKENS * INPUT_MICROS_PER_TOKEN + COMPLETION_TOKENS * OUTPUT_MICROS_PER_TOKEN
)
MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(stack: Stack, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=stack.base_url + "/v1", max_retries=0)


async def settled_balance(stack: Stack, customer_id: str) -> dict[str, int]:
    """The balance once the call has settled (nothing held); a call cut short (the client
    gone) settles in the background, so poll briefly."""
    for _ in range(100):
        await stack.runtime.drain()
        balance: dict[str, int] = await stack.operator.ok(
            "GET", f"/v1/customers/{customer_id}/balance"
        )
        if balance["held_micros"] == 0:
            return balance
        await asyncio.sleep(0.05)
    raise AssertionError(f"hold never settled: {balance}")


async def usage_totals(stack: Stack, customer_id: str) -> dict[str, int]:
    await stack.runtime.drain()
    data = await stack.operator.ok("GET", "/v1/usage", params={"customer_id": customer_id})
    return {b["meter"]: b["value"] for b in data["buckets"]}


async def call_properties(stack: Stack, customer_id: str) -> list[tuple[int, int]]:
    """`(cost_micros, uncaptured_micros)` of each call the customer made (its `api_calls`
    event's properties)."""
    async with stack.runtime.db.engine.connect() as conn:
        rows = await conn.execute(
            select(UsageEvent.properties).where(
                UsageEvent.customer_id == customer_id, UsageEvent.meter == "api_calls"
            )
        )
        return [(p["cost_micros"], p.get("uncaptured_micros", 0)) for (p,) in rows]


class TestChatCompletions:
    async def test_call_is_charged_at_the_upstreams_usage(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=1_000_000)
        raw = await client(stack, key).chat.completions.with_raw_response.create(
            model="test-chat", messages=MESSAGES
        )
        completion = raw.parse()
        assert completion.choices[0].message.content == ANSWER
        assert raw.headers["x-tollhouse-request-id"].startswith("req_")
        assert int(raw.headers["RateLimit-Limit"]) == TEXT_RPM_FREE
        assert int(raw.headers["RateLimit-Remaining"]) == TEXT_RPM_FREE - 1
        held_balance = int(raw.headers["x-tollhouse-balance-micros"])
        assert held_balance < 1_000_000 - CHAT_COST_MICROS  # the hold covers max output tokens
        assert await stack.available(customer_id) == 1_000_000 - CHAT_COST_MICROS
        usage = await usage_totals(stack, customer_id)
        assert usage["api_calls"] == 1
        assert usage["input_tokens"] == PROMPT_TOKENS
        assert usage["output_tokens"] == COMPLETION_TOKENS

    async def test_upstream_gets_its_model_name_and_no_tollhouse_key(self, stack: Stack) -> None:
        _, key = await stack.customer()
        await client(stack, key).chat.completions.create(model="test-chat", messages=MESSAGES)
        seen = stack.upstream.requests[-1]
        assert seen.body["model"] == "echo"
        assert key not in str(seen.headers)

    async def test_stream_without_stream_options_has_choices_in_every_chunk(
        self, stack: Stack
    ) -> None:
        """The client did not ask for usage: the gateway asks the upstream for it (to charge
        it) but keeps the usage-only chunk (`choices: []`) from the client, whose code reads
        `chunk.choices[0]` on every chunk."""
        customer_id, key = await stack.customer()
        stream = await client(stack, key).chat.completions.create(
            model="test-chat", messages=MESSAGES, stream=True
        )
        text = ""
        async for chunk in stream:
            assert chunk.choices, chunk
            text += chunk.choices[0].delta.content or ""
        assert text == ANSWER
        assert stack.upstream.requests[-1].body["stream_options"] == {"include_usage": True}
        assert await stack.available(customer_id) == 1_000_000 - CHAT_COST_MICROS
        usage = await usage_totals(stack, customer_id)
        assert (usage["input_tokens"], usage["output_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)

    async def test_stream_with_include_usage_ends_with_the_usage_chunk(self, stack: Stack) -> None:
        """The client asked (`stream_options.include_usage`): the last chunk carries the usage
        with empty `choices`, as OpenAI documents, and the call is charged at that usage."""
        customer_id, key = await stack.customer()
        stream = await client(stack, key).chat.completions.create(
            model="test-chat",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        assert all(chunk.choices and chunk.usage is None for chunk in chunks[:-1])
        last = chunks[-1]
        assert last.choices == []
        assert last.usage is not None
        assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (
            PROMPT_TOKENS,
            COMPLETION_TOKENS,
        )
        assert await stack.available(customer_id) == 1_000_000 - CHAT_COST_MICROS

    async def test_stream_without_usage_is_charged_by_counting(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        stream = await client(stack, key).chat.completions.create(
            model="test-chat-nousage", messages=MESSAGES, stream=True
        )
        async for _ in stream:
            pass
        charged = 1_000_000 - await stack.available(customer_id)
        usage = await usage_totals(stack, customer_id)
        tokenizer = stack.runtime.catalog.model("test-chat-nousage").tokenizer
        assert usage["output_tokens"] == count_tokens(ANSWER, tokenizer)
        assert charged == (
            usage["input_tokens"] * INPUT_MICROS_PER_TOKEN
            + usage["output_tokens"] * OUTPUT_MICROS_PER_TOKEN
        )

    async def test_client_disconnect_mid_stream_charges_what_was_delivered(
        self, stack: Stack
    ) -> None:
        customer_id, key = await stack.customer()
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=10) as http:
            async with http.stream(
                "POST",
                "/v1/chat/completions",
                headers={"Authorization": f"Bearer {key}"},
                json={"model": "test-chat-slow-stream", "messages": MESSAGES, "stream": True},
            ) as response:
                assert response.status_code == 200
                async for _ in response.aiter_bytes():
                    break
        balance = await settled_balance(stack, customer_id)
        charged = 1_000_000 - balance["available_micros"]
        usage = await usage_totals(stack, customer_id)
        tokenizer = stack.runtime.catalog.model("test-chat-slow-stream").tokenizer
        assert 0 < usage["output_tokens"] < count_tokens(ANSWER, tokenizer)
        assert charged == (
            usage["input_tokens"] * INPUT_MICROS_PER_TOKEN
            + usage["output_tokens"] * OUTPUT_MICROS_PER_TOKEN
        )

    async def test_upstream_500_is_502_and_costs_nothing(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        with pytest.raises(openai.APIStatusError) as caught:
            await client(stack, key).chat.completions.create(
                model="test-chat-500", messages=MESSAGES
            )
        assert caught.value.status_code == 502
        assert caught.value.body["code"] == "upstream-error"  # type: ignore[index]
        assert await stack.available(customer_id) == 1_000_000

    async def test_upstream_timeout_is_504_and_costs_nothing(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        with pytest.raises(openai.APIStatusError) as caught:
            await client(stack, key).chat.completions.create(
                model="test-chat-slow", messages=MESSAGES
            )
        assert caught.value.status_code == 504
        assert await stack.available(customer_id) == 1_000_000

    async def test_upstream_400_is_passed_through_and_costs_nothing(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        with pytest.raises(openai.BadRequestError):
            await client(stack, key).chat.completions.create(
                model="test-chat-400", messages=MESSAGES
            )
        assert await stack.available(customer_id) == 1_000_000


class TestDenials:
    async def test_unknown_key_is_401(self, stack: Stack) -> None:
        with pytest.raises(openai.AuthenticationError) as caught:
            await client(stack, "th_live_nope").chat.completions.create(
                model="test-chat", messages=MESSAGES
            )
        assert caught.value.status_code == 401
        assert stack.upstream.requests == []

    async def test_revoked_key_is_401(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        keys = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/keys")
        await stack.operator.ok("DELETE", f"/v1/keys/{keys[0]['id']}")
        with pytest.raises(openai.AuthenticationError):
            await client(stack, key).chat.completions.create(model="test-chat", messages=MESSAGES)

    async def test_model_above_the_plan_is_403_naming_the_plan(self, stack: Stack) -> None:
        _, key = await stack.customer(plan="free")
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await client(stack, key).chat.completions.create(
                model="test-chat-pro", messages=MESSAGES
            )
        body = caught.value.body
        assert isinstance(body, dict)
        assert body["code"] == "model-not-in-plan"
        assert stack.upstream.requests == []

    async def test_pro_plan_may_use_the_pro_model(self, stack: Stack) -> None:
        _, key = await stack.customer(plan="pro")
        completion = await client(stack, key).chat.completions.create(
            model="test-chat-pro", messages=MESSAGES
        )
        assert completion.choices[0].message.content == ANSWER

    async def test_without_credits_is_402_before_the_upstream(self, stack: Stack) -> None:
        _, key = await stack.customer(credits_micros=0)
        with pytest.raises(openai.APIStatusError) as caught:
            await client(stack, key).chat.completions.create(model="test-chat", messages=MESSAGES)
        assert caught.value.status_code == 402
        assert caught.value.body["code"] == "insufficient-credit"  # type: ignore[index]
        assert stack.upstream.requests == []

    async def test_rate_limit_is_429_with_retry_after(self, stack: Stack) -> None:
        _, key = await stack.customer()
        api = client(stack, key)
        for _ in range(TEXT_RPM_FREE):
            await api.chat.completions.create(model="test-chat", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as caught:
            await api.chat.completions.create(model="test-chat", messages=MESSAGES)
        headers = caught.value.response.headers
        assert int(headers["Retry-After"]) >= 1
        assert headers["RateLimit-Remaining"] == "0"
        assert len(stack.upstream.requests) == TEXT_RPM_FREE

    async def test_pro_plan_has_a_higher_rate_limit_than_free(self, stack: Stack) -> None:
        _, key = await stack.customer(plan="pro")
        raw = await client(stack, key).chat.completions.with_raw_response.create(
            model="test-chat", messages=MESSAGES
        )
        assert int(raw.headers["RateLimit-Limit"]) == 3 * TEXT_RPM_FREE

    async def test_unknown_model_is_404(self, stack: Stack) -> None:
        _, key = await stack.customer()
        with pytest.raises(openai.NotFoundError):
            await client(stack, key).chat.completions.create(model="nope", messages=MESSAGES)

    async def test_key_limited_to_models_cannot_call_others(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer()
        limited = await stack.operator.ok(
            "POST", f"/v1/customers/{customer_id}/keys", json={"allowed_models": ["test-embed"]}
        )
        with pytest.raises(openai.PermissionDeniedError):
            await client(stack, limited["key"]).chat.completions.create(
                model="test-chat", messages=MESSAGES
            )

    async def test_read_only_key_cannot_call_models(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer()
        reader = await stack.operator.ok(
            "POST", f"/v1/customers/{customer_id}/keys", json={"scopes": ["read"]}
        )
        with pytest.raises(openai.PermissionDeniedError) as caught:
            await client(stack, reader["key"]).chat.completions.create(
                model="test-chat", messages=MESSAGES
            )
        assert caught.value.body["code"] == "insufficient-scope"  # type: ignore[index]


class TestOtherRoutes:
    async def test_embeddings_are_charged_per_token(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        result = await client(stack, key).embeddings.create(model="test-embed", input="hello")
        assert len(result.data) == 1
        assert await stack.available(customer_id) == 1_000_000 - PROMPT_TOKENS

    async def test_usage_above_the_hold_is_charged_up_to_the_balance_never_below(
        self, stack: Stack
    ) -> None:
        """The local count of "hello" is 1 token, the upstream reports 12: the hold (1 micro)
        is captured and the excess cannot be, since the wallet is empty; it is flagged."""
        customer_id, key = await stack.customer(credits_micros=1)
        await client(stack, key).embeddings.create(model="test-embed", input="hello")
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == 0
        assert (await usage_totals(stack, customer_id))["input_tokens"] == PROMPT_TOKENS

    async def test_usage_above_the_hold_takes_what_the_wallet_has_left(self, stack: Stack) -> None:
        """The hold (1 micro for "hello") is captured, then of the 11 micros beyond it the
        wallet covers 4: those are charged, the other 7 recorded as uncaptured."""
        customer_id, key = await stack.customer(credits_micros=5)
        await client(stack, key).embeddings.create(model="test-embed", input="hello")
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == 0
        assert await call_properties(stack, customer_id) == [(5, 7)]

    async def test_a_capture_that_fails_for_a_transient_reason_is_retried_until_written(
        self, stack: Stack, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The database refuses the first two captures (a connection dropped): the call is
        still charged its price, once."""
        customer_id, key = await stack.customer()
        ledger = stack.runtime.ledger
        real_capture = ledger.capture
        failures = [ConnectionResetError("server closed the connection")] * 2

        async def flaky(*args: Any, **kwargs: Any) -> HoldView:
            if failures:
                raise failures.pop()
            return await real_capture(*args, **kwargs)

        monkeypatch.setattr(ledger, "capture", flaky)
        monkeypatch.setattr(settle_module, "RETRY_FIRST_SECONDS", 0.01)

        await client(stack, key).chat.completions.create(model="test-chat", messages=MESSAGES)

        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == 1_000_000 - CHAT_COST_MICROS
        assert await call_properties(stack, customer_id) == [(CHAT_COST_MICROS, 0)]
        assert failures == [] and "retrying" in caplog.text

    async def test_usage_events_the_database_fails_are_retried_before_the_answer(
        self, stack: Stack, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The recorder answers `MeteringUnavailable` twice (the database failed the write):
        the answer waits for the third try, and comes with its events stored."""
        customer_id, key = await stack.customer()
        recorder = stack.runtime.recorder
        real_record = recorder.record
        failures = [MeteringUnavailable("the database failed", retry_after_seconds=1)] * 2

        async def flaky(*args: Any, **kwargs: Any) -> RecordResult:
            if failures:
                raise failures.pop()
            return await real_record(*args, **kwargs)

        monkeypatch.setattr(recorder, "record", flaky)
        monkeypatch.setattr(settle_module, "RETRY_FIRST_SECONDS", 0.01)

        raw = await client(stack, key).chat.completions.with_raw_response.create(
            model="test-chat", messages=MESSAGES
        )

        assert failures == []
        assert raw.headers["x-tollhouse-cost-micros"] == str(CHAT_COST_MICROS)
        assert await call_properties(stack, customer_id) == [(CHAT_COST_MICROS, 0)]
        balance = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/balance")
        assert (balance["available_micros"], balance["held_micros"]) == (
            1_000_000 - CHAT_COST_MICROS,
            0,
        )

    async def test_an_answer_whose_charge_outlasts_the_wait_is_withheld_and_charged_later(
        self, stack: Stack, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The capture fails (a connection dropped) past `CHARGE_WAIT_SECONDS`: the client
        gets 503 `database-unavailable`, not the answer; once the capture passes, the call
        is charged once, its usage recorded."""
        customer_id, key = await stack.customer()
        ledger = stack.runtime.ledger
        real_capture = ledger.capture
        failing = asyncio.Event()
        failing.set()

        async def down(*args: Any, **kwargs: Any) -> HoldView:
            if failing.is_set():
                raise ConnectionResetError("server closed the connection")
            return await real_capture(*args, **kwargs)

        monkeypatch.setattr(ledger, "capture", down)
        monkeypatch.setattr(settle_module, "RETRY_FIRST_SECONDS", 0.01)
        monkeypatch.setattr(settle_module, "RETRY_MAX_SECONDS", 0.05)
        monkeypatch.setattr(gateway_routes, "CHARGE_WAIT_SECONDS", 0.3)

        with pytest.raises(openai.InternalServerError) as raised:
            await client(stack, key).chat.completions.create(model="test-chat", messages=MESSAGES)
        assert raised.value.status_code == 503
        assert raised.value.body["code"] == "database-unavailable"  # type: ignore[index]
        assert raised.value.response.headers["retry-after"] == "1"

        failing.clear()
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == 1_000_000 - CHAT_COST_MICROS
        assert await call_properties(stack, customer_id) == [(CHAT_COST_MICROS, 0)]

    async def test_images_are_charged_per_image(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        result = await client(stack, key).images.generate(model="test-image", prompt="a cat", n=2)
        assert len(result.data or []) == 2
        assert await stack.available(customer_id) == 1_000_000 - 2 * IMAGE_MICROS

    async def test_speech_is_charged_per_character(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        text = "Hello there"
        audio = await client(stack, key).audio.speech.create(
            model="test-tts", input=text, voice="alloy"
        )
        assert audio.content.startswith(b"ID3")
        assert (
            await stack.available(customer_id) == 1_000_000 - len(text) * TTS_MICROS_PER_CHARACTER
        )

    async def test_models_lists_only_what_the_plan_allows(self, stack: Stack) -> None:
        _, key = await stack.customer(plan="free")
        ids = {model.id async for model in client(stack, key).models.list()}
        assert "test-chat" in ids
        assert "test-chat-pro" not in ids
