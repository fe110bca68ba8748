"""Models that require a flat session, through the real `openai` SDK and the sidecar, on
SQLite and PostgreSQL, with the server's clock frozen.

The test catalog's `test-analyst` model requires an `analyst` session: $0.10 for 600 s or 30
tokens. The FakeUpstream's answer uses 19 tokens (12 in, 7 out), so the second call in a
session crosses the token cap: it is served, and the third is refused.

Story: without a session the SDK raises a readable 402 `session-required`; inside one, calls
cost nothing more, carry the session's headers and count their real tokens into it; the call
that crosses the token cap is the last one, streamed or not; the time cap and a termination
end it too; with auto-renew the next call starts (and pays for) the next session once; the
sidecar sees the same rules and counts reported usage into the session.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import openai
import pytest
from sqlalchemy import select
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import Stack, running_stack
from tests.support.catalog import (
    ANALYST_DURATION_SECONDS,
    ANALYST_MAX_TOKENS,
    ANALYST_PRICE_MICROS,
)
from tests.support.server import Api
from tests.support.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, FakeUpstream

from tollhouse.clock import FrozenClock
from tollhouse.metering.models import UsageEvent

WALLET_MICROS = 1_000_000
CALL_TOKENS = PROMPT_TOKENS + COMPLETION_TOKENS
MESSAGES = [{"role": "user", "content": "Analyse this"}]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 3, 15, 12, 0, tzinfo=UTC))


@pytest.fixture(params=["sqlite", "postgres"])
async def stack(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakeUpstream, clock: FrozenClock
) -> AsyncIterator[Stack]:
    url = None if request.param == "sqlite" else await create_postgres_database()
    try:
        async with running_stack(tmp_path, upstream, database_url=url, clock=clock) as running:
            yield running
    finally:
        if url is not None:
            await drop_postgres_database(url)


def client(stack: Stack, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=stack.base_url + "/v1", max_retries=0)


async def analyse(stack: Stack, key: str, *, stream: bool = False) -> dict[str, str]:
    """One `test-analyst` call; its response headers (the stream read to its end)."""
    async with client(stack, key) as sdk:
        chat = sdk.chat.completions
        if stream:
            async with chat.with_streaming_response.create(
                model="test-analyst", messages=MESSAGES, stream=True
            ) as response:
                async for _ in response.iter_lines():
                    pass
                headers = dict(response.headers)
        else:
            raw = await chat.with_raw_response.create(model="test-analyst", messages=MESSAGES)
            raw.parse()
            headers = dict(raw.headers)
    await stack.runtime.drain()
    return headers


async def refusal(stack: Stack, key: str) -> openai.APIStatusError:
    async with client(stack, key) as sdk:
        with pytest.raises(openai.APIStatusError) as raised:
            await sdk.chat.completions.create(model="test-analyst", messages=MESSAGES)
    return raised.value


async def start(own: Api, **extra: Any) -> dict[str, Any]:
    body = {"product": "analyst", "idempotency_key": f"start-{extra!r}", **extra}
    response = await own.client.post("/v1/sessions", json=body)
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    return session


async def session_events(stack: Stack, customer_id: str, type_: str) -> list[dict[str, Any]]:
    page = await stack.operator.ok(
        "GET", "/v1/events", params={"customer_id": customer_id, "type": type_}
    )
    events: list[dict[str, Any]] = page["data"]
    return events


async def test_without_a_session_the_sdk_gets_a_readable_402(stack: Stack) -> None:
    customer_id, key = await stack.customer(credits_micros=WALLET_MICROS)
    error = await refusal(stack, key)
    assert error.status_code == 402
    assert "analyst" in error.message and "POST /v1/sessions" in error.message
    body = error.body
    assert isinstance(body, dict)
    assert body["code"] == "session-required"
    problem = error.response.json()
    assert problem["type"].endswith("/session-required")
    assert (problem["product"], problem["price_micros"]) == ("analyst", ANALYST_PRICE_MICROS)
    assert stack.upstream.requests == []
    assert await stack.available(customer_id) == WALLET_MICROS


async def test_a_session_pays_for_its_calls_and_counts_their_tokens(stack: Stack) -> None:
    customer_id, key = await stack.customer(credits_micros=WALLET_MICROS)
    async with Api(stack.base_url, key) as own:
        session = await start(own)
        headers = await analyse(stack, key)
        assert headers["x-tollhouse-session-id"] == session["id"]
        assert int(headers["x-tollhouse-session-tokens-left"]) == ANALYST_MAX_TOKENS - CALL_TOKENS
        assert int(headers["x-tollhouse-session-seconds-left"]) == ANALYST_DURATION_SECONDS
        assert "x-tollhouse-hold-id" not in headers
        shown = await own.ok("GET", f"/v1/sessions/{session['id']}")
        assert (shown["tokens_used"], shown["status"]) == (CALL_TOKENS, "active")
    assert await stack.available(customer_id) == WALLET_MICROS - ANALYST_PRICE_MICROS
    async with stack.runtime.db.engine.connect() as conn:
        rows = await conn.execute(
            select(UsageEvent.meter, UsageEvent.session_id, UsageEvent.properties).where(
                UsageEvent.customer_id == customer_id
            )
        )
        events = {meter: (session_id, props["cost_micros"]) for meter, session_id, props in rows}
    assert events == {
        meter: (session["id"], 0) for meter in ("api_calls", "input_tokens", "output_tokens")
    }


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
async def test_the_call_that_crosses_the_token_cap_is_the_last(stack: Stack, stream: bool) -> None:
    customer_id, key = await stack.customer(credits_micros=WALLET_MICROS)
    async with Api(stack.base_url, key) as own:
        session = await start(own)
        first = await analyse(stack, key, stream=stream)
        second = await analyse(stack, key, stream=stream)
        assert first["x-tollhouse-session-id"] == second["x-tollhouse-session-id"] == session["id"]
        if not stream:  # a stream's headers go out before its usage is known
            assert second["x-tollhouse-session-tokens-left"] == "0"
        error = await refusal(stack, key)
        assert error.status_code == 402
        problem = error.response.json()
        assert (problem["error"]["code"], problem["session_id"]) == ("session-ended", session["id"])
        assert problem["reason"] == "tokens"
        shown = await own.ok("GET", f"/v1/sessions/{session['id']}")
    assert (shown["status"], shown["end_reason"]) == ("ended", "tokens")
    assert shown["tokens_used"] == 2 * CALL_TOKENS
    ended = await session_events(stack, customer_id, "session.ended")
    assert [e["data"]["session_id"] for e in ended] == [session["id"]]
    assert ended[0]["data"]["tokens_used"] == 2 * CALL_TOKENS
    assert len(stack.upstream.requests) == 2


async def test_the_time_cap_and_a_termination_end_a_session(
    stack: Stack, clock: FrozenClock
) -> None:
    _, key = await stack.customer(credits_micros=WALLET_MICROS)
    async with Api(stack.base_url, key) as own:
        timed = await start(own, idempotency_key="timed")
        clock.advance(ANALYST_DURATION_SECONDS - 1)
        assert (await analyse(stack, key))["x-tollhouse-session-seconds-left"] == "1"
        clock.advance(1)
        problem = (await refusal(stack, key)).response.json()
        assert (problem["error"]["code"], problem["reason"]) == ("session-ended", "duration")
        assert problem["session_id"] == timed["id"]

        terminated = await start(own, idempotency_key="terminated")
        await analyse(stack, key)
        await own.ok("POST", f"/v1/sessions/{terminated['id']}/terminate")
        problem = (await refusal(stack, key)).response.json()
        assert (problem["error"]["code"], problem["reason"]) == ("session-ended", "terminated")
        assert problem["session_id"] == terminated["id"]


async def test_auto_renew_starts_and_pays_for_the_next_session_once(stack: Stack) -> None:
    customer_id, key = await stack.customer(credits_micros=WALLET_MICROS)
    async with Api(stack.base_url, key) as own:
        first = await start(own, auto_renew=True)
        await analyse(stack, key)
        await analyse(stack, key)  # crosses the token cap
        # Three calls at once: one renewal, all three in the new session (admitted together,
        # so all are served though the second crosses its cap).
        results = await asyncio.gather(*(analyse(stack, key) for _ in range(3)))
        renewed = {headers["x-tollhouse-session-id"] for headers in results}
        assert len(renewed) == 1 and first["id"] not in renewed
        listed = await own.ok("GET", "/v1/sessions")
        assert [(s["id"], s["auto_renew"], s["tokens_used"]) for s in listed] == [
            (renewed.pop(), True, 3 * CALL_TOKENS),
            (first["id"], True, 2 * CALL_TOKENS),
        ]
    assert await stack.available(customer_id) == WALLET_MICROS - 2 * ANALYST_PRICE_MICROS


async def test_auto_renew_that_cannot_be_paid_is_402_session_ended(stack: Stack) -> None:
    _, key = await stack.customer(credits_micros=ANALYST_PRICE_MICROS)
    async with Api(stack.base_url, key) as own:
        first = await start(own, auto_renew=True)
        await analyse(stack, key)
        await analyse(stack, key)
        problem = (await refusal(stack, key)).response.json()
    assert (problem["error"]["code"], problem["session_id"]) == ("session-ended", first["id"])
    assert "renewing it failed" in problem["detail"]


async def test_the_sidecar_authorizes_in_the_session_and_counts_reported_usage(
    stack: Stack,
) -> None:
    customer_id, key = await stack.customer(credits_micros=WALLET_MICROS)
    ask = {"model": "test-analyst", "usage": {"input_tokens": 10, "output_tokens": 10}}
    async with Api(stack.base_url, key) as own:
        refused = await own.client.post("/v1/authorize", json=ask)
        assert refused.status_code == 402
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["type"].endswith("/session-required")

        session = await start(own)
        allowed = await own.client.post("/v1/authorize", json=ask)
        assert allowed.status_code == 200, allowed.text
        answer = allowed.json()
        assert (answer["hold"], answer["amount_micros"]) == (None, 0)
        assert answer["session"]["id"] == session["id"]
        assert answer["session"]["tokens_left"] == ANALYST_MAX_TOKENS
        assert allowed.headers["x-tollhouse-session-id"] == session["id"]

        unknown = await own.client.post(
            "/v1/usage/events",
            json={
                "events": [{"id": "u0", "meter": "input_tokens", "value": 1, "session_id": "ses_x"}]
            },
        )
        assert unknown.status_code == 422
        assert unknown.json()["errors"][0]["loc"] == "events.0.session_id"

        report = {
            "events": [
                {"id": f"u-{meter}", "meter": meter, "value": 15, "session_id": session["id"]}
                for meter in ("input_tokens", "output_tokens")
            ]
        }
        for _ in range(2):  # a retried report counts once
            await own.ok("POST", "/v1/usage/events", json=report)
        shown = await own.ok("GET", f"/v1/sessions/{session['id']}")
        assert (shown["tokens_used"], shown["status"]) == (30, "ended")
        ended = await own.client.post("/v1/authorize", json=ask)
        assert ended.status_code == 402
        assert ended.json()["type"].endswith("/session-ended")
    assert await stack.available(customer_id) == WALLET_MICROS - ANALYST_PRICE_MICROS
