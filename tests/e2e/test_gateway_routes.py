"""Route and model agree: a model is served only on the routes of its category and protocol.

Story: a customer calls a speech model on chat completions, an Anthropic model on the OpenAI
routes, an OpenAI-compatible model on `/v1/messages`, and a model of a plain HTTP upstream
through the gateway. Each gets a 400 `wrong-route` naming the route that serves the model,
before anything is held or counted against a rate limit. `/v1/models` lists only what the key
can call, with the routes that serve it. Calls a session pays tell the client they cost 0.
"""

from __future__ import annotations

import anthropic
import httpx
import openai
import pytest
from tests.e2e.conftest import Stack
from tests.e2e.test_gateway_openai import CHAT_COST_MICROS, MESSAGES, client
from tests.support.catalog import SESSION_PRICE_MICROS, TEXT_RPM_FREE
from tests.support.server import Api
from tests.support.upstream import ANSWER

CREDITS_MICROS = 1_000_000


async def assert_nothing_taken(stack: Stack, customer_id: str, key: str) -> None:
    """Nothing held, and the `text` rate limit untouched: the next call is its first."""
    assert await stack.available(customer_id) == CREDITS_MICROS
    raw = await client(stack, key).chat.completions.with_raw_response.create(
        model="test-chat", messages=MESSAGES
    )
    assert int(raw.headers["RateLimit-Remaining"]) == TEXT_RPM_FREE - 1


class TestWrongRoute:
    async def test_a_speech_model_on_chat_names_the_speech_route(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        with pytest.raises(openai.BadRequestError) as caught:
            await client(stack, key).chat.completions.create(model="test-tts", messages=MESSAGES)
        body = caught.value.body
        assert isinstance(body, dict)
        assert body["code"] == "wrong-route"
        assert body["message"] == (
            "model 'test-tts' is a text-to-speech model: call POST /v1/audio/speech"
        )
        await assert_nothing_taken(stack, customer_id, key)

    async def test_an_anthropic_model_on_chat_names_the_messages_route(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        with pytest.raises(openai.BadRequestError) as caught:
            await client(stack, key).responses.create(model="test-claude", input="hi")
        body = caught.value.body
        assert isinstance(body, dict)
        assert body["message"] == (
            "model 'test-claude' is not served on POST /v1/responses by its upstream: "
            "call POST /v1/messages"
        )
        await assert_nothing_taken(stack, customer_id, key)

    async def test_an_openai_model_on_messages_names_its_route(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        claude = anthropic.AsyncAnthropic(base_url=stack.base_url, api_key=key, max_retries=0)
        with pytest.raises(anthropic.BadRequestError) as caught:
            await claude.messages.create(model="test-chat", max_tokens=10, messages=MESSAGES)
        body = caught.value.body
        assert isinstance(body, dict)
        assert body["error"]["type"] == "invalid_request_error"
        assert body["problem_type"].endswith("/wrong-route")
        assert body["routes"] == ["/v1/chat/completions", "/v1/completions", "/v1/responses"]
        assert body["detail"].endswith("call POST /v1/chat/completions")
        await assert_nothing_taken(stack, customer_id, key)

    async def test_a_plain_http_model_is_not_served_by_the_gateway(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        with pytest.raises(openai.BadRequestError) as caught:
            await client(stack, key).chat.completions.create(model="test-video", messages=MESSAGES)
        body = caught.value.body
        assert isinstance(body, dict)
        assert "POST /v1/authorize" in body["message"]
        await assert_nothing_taken(stack, customer_id, key)


class TestModelList:
    async def test_models_lists_what_the_key_can_call_with_its_routes(self, stack: Stack) -> None:
        _, key = await stack.customer(plan="free")
        models = {model.id: model async for model in client(stack, key).models.list()}
        assert "test-video" not in models  # a plain HTTP upstream: no gateway route
        assert "test-chat-pro" not in models  # not in the plan
        assert models["test-claude"].routes == ["/v1/messages"]  # type: ignore[attr-defined]
        assert models["test-tts"].routes == ["/v1/audio/speech"]  # type: ignore[attr-defined]


class TestCostOfChat:
    async def test_a_completion_carries_its_cost(self, stack: Stack) -> None:
        _, key = await stack.customer(credits_micros=CREDITS_MICROS)
        raw = await client(stack, key).chat.completions.with_raw_response.create(
            model="test-chat", messages=MESSAGES
        )
        assert int(raw.headers["x-tollhouse-cost-micros"]) == CHAT_COST_MICROS

    async def test_a_stream_ends_with_its_cost_after_done(self, stack: Stack) -> None:
        """The comment comes after the upstream's last event; the SDK's stream skips it."""
        _, key = await stack.customer(credits_micros=CREDITS_MICROS)
        body = {"model": "test-chat", "messages": MESSAGES, "stream": True}
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            async with http.stream(
                "POST",
                "/v1/chat/completions",
                json=body,
                headers={"Authorization": f"Bearer {key}"},
            ) as response:
                received = b"".join([chunk async for chunk in response.aiter_bytes()])
        assert received.endswith(
            f"data: [DONE]\n\n: x-tollhouse-cost-micros={CHAT_COST_MICROS}\n\n".encode()
        )
        stream = await client(stack, key).chat.completions.create(
            model="test-chat", messages=MESSAGES, stream=True
        )
        pieces = [chunk.choices[0].delta.content or "" async for chunk in stream]
        assert "".join(pieces) == ANSWER


class TestCostInASession:
    async def test_a_call_the_session_pays_reports_zero(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        async with Api(stack.base_url, key) as own:
            await own.ok(
                "POST", "/v1/sessions", json={"product": "analysis", "idempotency_key": "s-1"}
            )
        raw = await client(stack, key).chat.completions.with_raw_response.create(
            model="test-chat", messages=MESSAGES
        )
        assert raw.headers["x-tollhouse-session-id"]
        assert raw.headers["x-tollhouse-cost-micros"] == "0"
        assert await stack.available(customer_id) == CREDITS_MICROS - SESSION_PRICE_MICROS
