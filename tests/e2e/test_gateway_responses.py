"""OpenAI's Responses API through tollhouse, with the real `openai` SDK's `responses.create`.

Story: a customer points the official OpenAI client (as Codex CLI does) at tollhouse and calls
`/v1/responses`, whole and streamed. Each call is held on its estimate (the `input` and
`instructions` counted locally, plus `max_output_tokens`), forwarded unchanged, charged at the
usage the upstream reports (a stream's from its `response.completed` event), and tells the
client what it cost: the `x-tollhouse-cost-micros` header, or a stream's last SSE comment. A
stream without usage, or cut short, is counted locally and never free.
"""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from sqlalchemy import select
from tests.e2e.conftest import Stack
from tests.e2e.test_gateway_openai import (
    CHAT_COST_MICROS,
    client,
    settled_balance,
    usage_totals,
)
from tests.support.catalog import INPUT_MICROS_PER_TOKEN, OUTPUT_MICROS_PER_TOKEN
from tests.support.upstream import ANSWER, COMPLETION_TOKENS, PROMPT_TOKENS, STREAM_PIECES

from tollhouse.gateway.tokens import count_chat_tokens, count_tokens
from tollhouse.metering.models import UsageEvent

CREDITS_MICROS = 1_000_000
PROMPT = "Say hello"
INSTRUCTIONS = "Answer briefly."
MAX_OUTPUT_TOKENS = 50
PROMPT_ESTIMATE = count_chat_tokens([{"content": PROMPT}], "cl100k_base")
"""The local count of `input=PROMPT`, as the hold's estimate counts it (test models use
cl100k)."""


def counted_cost(text: str) -> int:
    """The charge of an answer without usage: prompt estimate + `text` counted locally."""
    output = count_tokens(text, "cl100k_base")
    return PROMPT_ESTIMATE * INPUT_MICROS_PER_TOKEN + output * OUTPUT_MICROS_PER_TOKEN


async def call_events(stack: Stack, customer_id: str) -> list[dict[str, Any]]:
    """The properties of each call's `api_calls` usage event."""
    await stack.runtime.drain()
    async with stack.runtime.db.engine.connect() as conn:
        rows = await conn.execute(
            select(UsageEvent.properties).where(
                UsageEvent.customer_id == customer_id, UsageEvent.meter == "api_calls"
            )
        )
        return [dict(properties) for (properties,) in rows]


async def raw_stream(stack: Stack, key: str, model: str) -> bytes:
    """The bytes of a streamed Responses call, as the client receives them."""
    body = {"model": model, "input": PROMPT, "stream": True}
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        async with http.stream(
            "POST", "/v1/responses", json=body, headers={"Authorization": f"Bearer {key}"}
        ) as response:
            assert response.status_code == 200
            return b"".join([chunk async for chunk in response.aiter_bytes()])


class TestWholeResponses:
    async def test_response_is_held_charged_at_its_usage_and_says_its_cost(
        self, stack: Stack
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        raw = await client(stack, key).responses.with_raw_response.create(
            model="test-chat",
            input=PROMPT,
            instructions=INSTRUCTIONS,
            max_output_tokens=MAX_OUTPUT_TOKENS,
        )
        response = raw.parse()
        assert response.output_text == ANSWER
        assert int(raw.headers["x-tollhouse-cost-micros"]) == CHAT_COST_MICROS
        held = PROMPT_ESTIMATE + count_tokens(INSTRUCTIONS, "cl100k_base")
        held_micros = held * INPUT_MICROS_PER_TOKEN + MAX_OUTPUT_TOKENS * OUTPUT_MICROS_PER_TOKEN
        assert int(raw.headers["x-tollhouse-balance-micros"]) == CREDITS_MICROS - held_micros
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == CREDITS_MICROS - CHAT_COST_MICROS
        usage = await usage_totals(stack, customer_id)
        assert (usage["input_tokens"], usage["output_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
        seen = stack.upstream.requests[-1]
        assert (seen.path, seen.body["model"]) == ("/v1/responses", "echo")
        assert "stream_options" not in seen.body
        assert seen.body["instructions"] == INSTRUCTIONS

    async def test_input_items_are_accepted_and_counted(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        items: Any = [{"role": "user", "content": [{"type": "input_text", "text": PROMPT}]}]
        response = await client(stack, key).responses.create(model="test-chat", input=items)
        assert response.output_text == ANSWER
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == CREDITS_MICROS - CHAT_COST_MICROS

    async def test_response_without_usage_is_counted_locally_never_free(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        raw = await client(stack, key).responses.with_raw_response.create(
            model="test-chat-nousage", input=PROMPT
        )
        assert raw.parse().output_text == ANSWER
        cost = counted_cost(ANSWER)
        assert cost > 0
        assert int(raw.headers["x-tollhouse-cost-micros"]) == cost
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == CREDITS_MICROS - cost
        [event] = await call_events(stack, customer_id)
        assert (event["usage_source"], event["cost_micros"]) == ("counted", cost)

    async def test_a_bad_input_is_refused_before_anything_is_held(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            response = await http.post(
                "/v1/responses",
                json={"model": "test-chat", "input": 42},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "input"
        assert await stack.available(customer_id) == CREDITS_MICROS


class TestStreamedResponses:
    async def test_events_pass_through_and_response_completed_usage_is_charged(
        self, stack: Stack
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        stream = await client(stack, key).responses.create(
            model="test-chat", input=PROMPT, stream=True
        )
        kinds: list[str] = []
        text = ""
        async for event in stream:
            kinds.append(event.type)
            if event.type == "response.output_text.delta":
                text += event.delta
        assert text == ANSWER
        assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == CREDITS_MICROS - CHAT_COST_MICROS
        usage = await usage_totals(stack, customer_id)
        assert (usage["input_tokens"], usage["output_tokens"]) == (PROMPT_TOKENS, COMPLETION_TOKENS)
        [event] = await call_events(stack, customer_id)
        assert event["usage_source"] == "upstream" and "interrupted" not in event

    async def test_stream_ends_with_its_cost_as_an_sse_comment(self, stack: Stack) -> None:
        _, key = await stack.customer(credits_micros=CREDITS_MICROS)
        body = await raw_stream(stack, key, "test-chat")
        events = body.split(b"\n\n")
        assert events[-2:] == [f": x-tollhouse-cost-micros={CHAT_COST_MICROS}".encode(), b""]
        assert events[-3].startswith(b"event: response.completed\ndata: ")

    async def test_stream_without_usage_is_counted_locally_never_free(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        body = await raw_stream(stack, key, "test-chat-nousage")
        cost = counted_cost(ANSWER)
        assert body.endswith(f": x-tollhouse-cost-micros={cost}\n\n".encode())
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == CREDITS_MICROS - cost
        [event] = await call_events(stack, customer_id)
        assert (event["usage_source"], event["cost_micros"]) == ("counted", cost)

    async def test_a_stream_cut_short_charges_what_was_delivered(self, stack: Stack) -> None:
        """The upstream drops the connection after two text deltas: the prompt estimate and
        the pieces that reached the client (those two, or none when the drop overtakes
        them) are charged, flagged interrupted."""
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        body = await raw_stream(stack, key, "test-chat-broken")
        delivered = "".join(
            orjson.loads(event.split(b"data: ", 1)[1])["delta"]
            for event in body.split(b"\n\n")
            if event.startswith(b"event: response.output_text.delta")
        )
        assert delivered in ("", "".join(STREAM_PIECES[:2]))
        cost = counted_cost(delivered)
        assert body.endswith(f": x-tollhouse-cost-micros={cost}\n\n".encode())
        balance = await settled_balance(stack, customer_id)
        assert balance["available_micros"] == CREDITS_MICROS - cost
        [event] = await call_events(stack, customer_id)
        assert (event["usage_source"], event["interrupted"]) == ("counted", True)
