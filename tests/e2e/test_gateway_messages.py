"""Anthropic's Messages API through tollhouse, with the real `anthropic` SDK.

Story: a customer points the official Anthropic client (as Claude Code does) at tollhouse with
their tollhouse key, in `x-api-key` or as a bearer token, and calls a model whose upstream
speaks Anthropic's protocol: `messages.create`, `messages.stream`, and `count_tokens`. The
upstream gets the operator's key in `x-api-key` and the client's `anthropic-version`; each call
is held, charged at the usage the upstream reports (a stream's from `message_start` and
`message_delta`), and says what it cost; errors come in Anthropic's shape, which the SDK turns
into its exception classes. A token count is answered by tollhouse and costs nothing.
"""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import orjson
import pytest
from tests.e2e.conftest import Stack
from tests.e2e.test_gateway_openai import CHAT_COST_MICROS, settled_balance, usage_totals
from tests.e2e.test_gateway_responses import call_events
from tests.support.catalog import INPUT_MICROS_PER_TOKEN, OUTPUT_MICROS_PER_TOKEN
from tests.support.upstream import ANSWER, COMPLETION_TOKENS, PROMPT_TOKENS, STREAM_PIECES

from tollhouse.gateway.tokens import count_chat_tokens, count_tokens

CREDITS_MICROS = 1_000_000
MAX_TOKENS = 50
UPSTREAM_KEY = "upstream-secret"
MESSAGES: Any = [{"role": "user", "content": "Say hello"}]
SYSTEM = "Answer briefly."
PROMPT_ESTIMATE = count_chat_tokens(MESSAGES, "cl100k_base")
"""The local count of `MESSAGES`, as the hold's estimate and `count_tokens` count it."""


def client(stack: Stack, key: str, *, bearer: bool = False) -> anthropic.AsyncAnthropic:
    """The SDK pointed at tollhouse: the key as `x-api-key`, or as `Authorization: Bearer`."""
    if bearer:
        return anthropic.AsyncAnthropic(base_url=stack.base_url, auth_token=key, max_retries=0)
    return anthropic.AsyncAnthropic(base_url=stack.base_url, api_key=key, max_retries=0)


@pytest.fixture(autouse=True)
def upstream_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator's key of the Anthropic upstream, read by tollhouse at each call."""
    monkeypatch.setenv("TOLLHOUSE_TEST_UPSTREAM_KEY", UPSTREAM_KEY)


async def raw_stream(stack: Stack, key: str, model: str) -> bytes:
    """The bytes of a streamed Messages call, as the client receives them."""
    body = {"model": model, "max_tokens": MAX_TOKENS, "messages": MESSAGES, "stream": True}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        async with http.stream(
            "POST", "/v1/messages", json=body, headers={"x-api-key": key}
        ) as response:
            assert response.status_code == 200
            return b"".join([chunk async for chunk in response.aiter_bytes()])


def delivered_text(body: bytes) -> str:
    """The text deltas of a Messages stream's bytes."""
    return "".join(
        orjson.loads(event.split(b"data: ", 1)[1])["delta"]["text"]
        for event in body.split(b"\n\n")
        if event.startswith(b"event: content_block_delta")
    )


def counted_cost(text: str, input_tokens: int = PROMPT_ESTIMATE) -> int:
    output = count_tokens(text, "cl100k_base")
    return input_tokens * INPUT_MICROS_PER_TOKEN + output * OUTPUT_MICROS_PER_TOKEN


class TestWholeMessages:
    async def test_message_is_held_charged_at_its_usage_and_says_its_cost(
        self, stack: Stack
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        raw = await client(stack, key).messages.with_raw_response.create(
            model="test-claude", max_tokens=MAX_TOKENS, system=SYSTEM, messages=MESSAGES
        )
        message = await raw.parse()
        assert message.content[0].type == "text" and message.content[0].text == ANSWER
        assert int(raw.headers["x-tollhouse-cost-micros"]) == CHAT_COST_MICROS
        held = PROMPT_ESTIMATE + count_tokens(SYSTEM, "cl100k_base")
        held_micros = held * INPUT_MICROS_PER_TOKEN + MAX_TOKENS * OUTPUT_MICROS_PER_TOKEN
        assert int(raw.headers["x-tollhouse-balance-micros"]) == CREDITS_MICROS - held_micros
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == CREDITS_MICROS - CHAT_COST_MICROS
        usage = await usage_totals(stack, customer_id)
        assert (usage["input_tokens"], usage["output_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)

    async def test_upstream_gets_its_key_and_the_clients_anthropic_version(
        self, stack: Stack
    ) -> None:
        _, key = await stack.customer()
        await client(stack, key).messages.create(
            model="test-claude",
            max_tokens=MAX_TOKENS,
            messages=MESSAGES,
            extra_headers={"anthropic-version": "2023-06-01", "anthropic-beta": "test-beta"},
        )
        seen = stack.upstream.requests[-1]
        headers = {name.lower(): value for name, value in seen.headers.items()}
        assert (seen.path, seen.body["model"]) == ("/v1/messages", "echo")
        assert headers["x-api-key"] == UPSTREAM_KEY
        assert headers["anthropic-version"] == "2023-06-01"
        assert headers["anthropic-beta"] == "test-beta"
        assert "authorization" not in headers and key not in str(headers)

    async def test_the_key_may_come_as_a_bearer_token(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        message = await client(stack, key, bearer=True).messages.create(
            model="test-claude", max_tokens=MAX_TOKENS, messages=MESSAGES
        )
        assert message.usage.output_tokens == COMPLETION_TOKENS
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == CREDITS_MICROS - CHAT_COST_MICROS

    async def test_message_without_usage_is_counted_locally_never_free(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        raw = await client(stack, key).messages.with_raw_response.create(
            model="test-claude-nousage", max_tokens=MAX_TOKENS, messages=MESSAGES
        )
        cost = counted_cost(ANSWER)
        assert cost > 0 and int(raw.headers["x-tollhouse-cost-micros"]) == cost
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == CREDITS_MICROS - cost
        [event] = await call_events(stack, customer_id)
        assert event["usage_source"] == "counted"


class TestStreamedMessages:
    async def test_stream_helper_gets_every_event_and_usage_is_charged(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        async with client(stack, key).messages.stream(
            model="test-claude", max_tokens=MAX_TOKENS, messages=MESSAGES
        ) as stream:
            text = "".join([piece async for piece in stream.text_stream])
            final = await stream.get_final_message()
        assert text == ANSWER
        assert (final.usage.input_tokens, final.usage.output_tokens) == (
            PROMPT_TOKENS,
            COMPLETION_TOKENS,
        )
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == CREDITS_MICROS - CHAT_COST_MICROS
        [event] = await call_events(stack, customer_id)
        assert event["usage_source"] == "upstream" and "interrupted" not in event

    async def test_stream_true_yields_the_raw_events(self, stack: Stack) -> None:
        _, key = await stack.customer(credits_micros=CREDITS_MICROS)
        stream = await client(stack, key).messages.create(
            model="test-claude", max_tokens=MAX_TOKENS, messages=MESSAGES, stream=True
        )
        kinds = [event.type async for event in stream]
        assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]

    async def test_stream_ends_with_its_cost_as_an_sse_comment(self, stack: Stack) -> None:
        _, key = await stack.customer(credits_micros=CREDITS_MICROS)
        events = (await raw_stream(stack, key, "test-claude")).split(b"\n\n")
        assert events[-2:] == [f": x-tollhouse-cost-micros={CHAT_COST_MICROS}".encode(), b""]
        assert events[-3].startswith(b"event: message_stop\n")

    async def test_stream_without_usage_is_counted_locally_never_free(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        body = await raw_stream(stack, key, "test-claude-nousage")
        cost = counted_cost(ANSWER)
        assert body.endswith(f": x-tollhouse-cost-micros={cost}\n\n".encode())
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == CREDITS_MICROS - cost

    async def test_a_stream_cut_short_charges_its_input_and_what_was_delivered(
        self, stack: Stack
    ) -> None:
        """The upstream drops the connection after two text deltas: the input that
        `message_start` reported (when it reached tollhouse) and the text that reached the
        client are charged, flagged interrupted."""
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        body = await raw_stream(stack, key, "test-claude-broken")
        delivered = delivered_text(body)
        assert delivered in ("", "".join(STREAM_PIECES[:2]))
        started = b"event: message_start" in body
        cost = counted_cost(delivered, PROMPT_TOKENS if started else PROMPT_ESTIMATE)
        assert body.endswith(f": x-tollhouse-cost-micros={cost}\n\n".encode())
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == CREDITS_MICROS - cost
        [event] = await call_events(stack, customer_id)
        assert (event["usage_source"], event["interrupted"]) == ("counted", True)


class TestAnthropicErrors:
    async def test_a_bad_key_is_an_authentication_error_in_anthropics_shape(
        self, stack: Stack
    ) -> None:
        with pytest.raises(anthropic.AuthenticationError) as caught:
            await client(stack, "th_live_nope").messages.create(
                model="test-claude", max_tokens=MAX_TOKENS, messages=MESSAGES
            )
        body: Any = caught.value.body
        assert body["type"] == "error"
        assert body["error"]["type"] == "authentication_error"
        assert body["problem_type"].endswith("/malformed-key")
        assert body["status"] == 401

    async def test_no_key_names_the_anthropic_header(self, stack: Stack) -> None:
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            response = await http.post(
                "/v1/messages",
                json={"model": "test-claude", "max_tokens": MAX_TOKENS, "messages": MESSAGES},
            )
        assert response.status_code == 401
        assert response.json()["error"] == {
            "type": "authentication_error",
            "message": "send your API key as 'x-api-key: th_...' (or as a bearer token)",
        }

    async def test_an_empty_wallet_is_a_billing_error(self, stack: Stack) -> None:
        _, key = await stack.customer(credits_micros=0)
        with pytest.raises(anthropic.APIStatusError) as caught:
            await client(stack, key).messages.create(
                model="test-claude", max_tokens=MAX_TOKENS, messages=MESSAGES
            )
        body: Any = caught.value.body
        assert caught.value.status_code == 402
        assert body["error"]["type"] == "billing_error"
        assert body["problem_type"].endswith("/insufficient-credit")

    async def test_an_upstream_5xx_is_an_api_error_and_charges_nothing(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        with pytest.raises(anthropic.APIStatusError) as caught:
            await client(stack, key).messages.create(
                model="test-claude-500", max_tokens=MAX_TOKENS, messages=MESSAGES
            )
        assert caught.value.status_code == 502
        assert caught.value.body["error"]["type"] == "api_error"  # type: ignore[index]
        assert await stack.available(customer_id) == CREDITS_MICROS

    async def test_an_upstream_4xx_is_passed_through_and_charges_nothing(
        self, stack: Stack
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        with pytest.raises(anthropic.BadRequestError) as caught:
            await client(stack, key).messages.create(
                model="test-claude-400", max_tokens=MAX_TOKENS, messages=MESSAGES
            )
        assert caught.value.body == {
            "type": "error",
            "error": {"type": "invalid_request_error", "message": "upstream says 400"},
        }
        assert await stack.available(customer_id) == CREDITS_MICROS

    async def test_a_get_is_a_405_in_anthropics_shape(self, stack: Stack) -> None:
        _, key = await stack.customer()
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            response = await http.get("/v1/messages", headers={"x-api-key": key})
        assert response.status_code == 405
        assert response.json()["error"]["type"] == "api_error"
        assert response.json()["problem_type"].endswith("/method-not-allowed")


class TestCountTokens:
    async def test_tokens_are_counted_locally_and_nothing_is_charged(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        calls = len(stack.upstream.requests)
        counted = await client(stack, key).messages.count_tokens(
            model="test-claude", system=SYSTEM, messages=MESSAGES
        )
        assert counted.input_tokens == PROMPT_ESTIMATE + count_tokens(SYSTEM, "cl100k_base")
        assert len(stack.upstream.requests) == calls
        assert await stack.available(customer_id) == CREDITS_MICROS
        assert await call_events(stack, customer_id) == []

    async def test_a_key_not_allowed_the_model_is_refused(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer()
        limited = await stack.operator.ok(
            "POST", f"/v1/customers/{customer_id}/keys", json={"allowed_models": ["test-chat"]}
        )
        with pytest.raises(anthropic.PermissionDeniedError) as caught:
            await client(stack, limited["key"]).messages.count_tokens(
                model="test-claude", messages=MESSAGES
            )
        assert caught.value.body["error"]["type"] == "permission_error"  # type: ignore[index]

    async def test_a_bad_key_is_refused(self, stack: Stack) -> None:
        with pytest.raises(anthropic.AuthenticationError):
            await client(stack, "th_live_nope").messages.count_tokens(
                model="test-claude", messages=MESSAGES
            )
