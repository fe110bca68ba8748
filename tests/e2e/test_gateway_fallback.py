"""Fallback upstreams through the real `openai` SDK, in front of three local upstreams.

Story: the operator's catalog serves some models from several upstreams (`primary`, the
test catalog's FakeUpstream; `backup` and `third`, two more; `closed`, a port nobody
listens on). A customer calls them with the official OpenAI client. When the first upstream
refuses the connection, answers 500 or 429, or does not answer in time, the same call is sent
to the next upstream under the same hold: the customer gets the backup's answer, is charged
once (one hold, one capture in the wallet's transactions), and the usage events and the
`x-tollhouse-upstream` header name the upstream that served. A 400 is the model's answer and
is passed through; a stream that broke after it started is not sent again; when every
upstream fails the hold is voided and nothing is charged.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from sqlalchemy import select
from tests.e2e.conftest import UPSTREAM_TIMEOUT_SECONDS, Stack, running_stack
from tests.support.catalog import (
    CHAT_MAX_OUTPUT_TOKENS,
    INPUT_MICROS_PER_TOKEN,
    OUTPUT_MICROS_PER_TOKEN,
    catalog_text,
)
from tests.support.ports import free_port
from tests.support.upstream import ANSWER, COMPLETION_TOKENS, PROMPT_TOKENS, FakeUpstream

from tollhouse.gateway.tokens import count_tokens
from tollhouse.metering.models import UsageEvent

CHAT_COST_MICROS = (
    PROMPT_TOKENS * INPUT_MICROS_PER_TOKEN + COMPLETION_TOKENS * OUTPUT_MICROS_PER_TOKEN
)
CREDITS_MICROS = 1_000_000
MESSAGES = [{"role": "user", "content": "Say hello"}]
SHORT_TIMEOUT_SECONDS = 0.5
"""The `timeout_seconds` of the slow upstream entries (the gateway's own is 1 s)."""
WEIGHTED_CALLS = 120
"""Calls of the weighted-selection test: `primary` (weight 3) should serve ~90 of them."""

FIRST_FAILS = {
    "refused": {"upstream": "closed", "model": "echo"},
    "500": {"upstream": "primary", "model": "error-500"},
    "429": {"upstream": "primary", "model": "error-429"},
    "timeout": {"upstream": "primary", "model": "slow", "timeout_seconds": SHORT_TIMEOUT_SECONDS},
}
"""How the first upstream of each `fb-<kind>` model fails; `backup` serves after it."""
BACKUP = {"upstream": "backup", "model": "echo", "priority": 2}


def fallback_catalog(primary: str, backup: str, third: str, closed: str) -> str:
    """The test catalog plus three upstreams and the fallback models (`primary` is the
    catalog's own `fake`, renamed)."""
    data = yaml.safe_load(catalog_text(primary))
    data["upstreams"] = {
        "primary": data["upstreams"]["fake"],
        "backup": {"base_url": backup},
        "third": {"base_url": third},
        "closed": {"base_url": closed},
    }
    for model in data["models"].values():
        model["upstream"] = "primary"
    chat = {
        "category": "text",
        "max_output_tokens": CHAT_MAX_OUTPUT_TOKENS,
        "price": {"input_per_1m_tokens": "1", "output_per_1m_tokens": "2"},
    }
    models = {f"fb-{kind}": [first, BACKUP] for kind, first in FIRST_FAILS.items()}
    models["fb-400"] = [{"upstream": "primary", "model": "error-400"}, BACKUP]
    models["fb-broken"] = [{"upstream": "primary", "model": "broken-stream"}, BACKUP]
    models["fb-all-fail"] = [
        {"upstream": "closed", "model": "echo"},
        {"upstream": "primary", "model": "error-500", "priority": 2},
        {"upstream": "backup", "model": "error-503", "priority": 3},
    ]
    models["fb-all-slow"] = [
        {"upstream": "primary", "model": "error-429"},
        {"upstream": "backup", "model": "slow", "priority": 2, "timeout_seconds": 0.5},
    ]
    models["fb-all-429"] = [
        {"upstream": "primary", "model": "error-429"},
        {"upstream": "backup", "model": "error-429", "priority": 2},
    ]
    models["fb-weighted"] = [
        {"upstream": "primary", "model": "echo", "weight": 3},
        {"upstream": "backup", "model": "echo"},
        {"upstream": "third", "model": "echo", "priority": 2},
    ]
    for model_id, upstreams in models.items():
        data["models"][model_id] = {**chat, "upstreams": upstreams}
    return yaml.safe_dump(data, sort_keys=False)


@pytest.fixture
async def backup() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream(slow_seconds=3 * UPSTREAM_TIMEOUT_SECONDS)
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def third() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.stop()


@pytest.fixture
async def stack(
    tmp_path: Path, upstream: FakeUpstream, backup: FakeUpstream, third: FakeUpstream
) -> AsyncIterator[Stack]:
    closed = f"http://127.0.0.1:{free_port()}/v1"
    catalog = tmp_path / "fallback.yaml"
    catalog.write_text(fallback_catalog(upstream.base_url, backup.base_url, third.base_url, closed))
    async with running_stack(tmp_path, upstream, catalog=catalog) as running:
        yield running


def client(stack: Stack, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=stack.base_url + "/v1", max_retries=0)


async def settled(stack: Stack, customer_id: str) -> dict[str, Any]:
    """The wallet once nothing is held (a call cut short settles in the background: poll)."""
    for _ in range(200):
        await stack.runtime.drain()
        balance: dict[str, Any] = await stack.operator.ok(
            "GET", f"/v1/customers/{customer_id}/balance"
        )
        if balance["held_micros"] == 0:
            return balance
        await asyncio.sleep(0.05)
    raise AssertionError(f"the hold never settled: {balance}")


async def ledger_kinds(stack: Stack, customer_id: str) -> Counter[str]:
    """How many wallet transactions of each kind (`grant`, `hold`, `capture`, `void`, ...)
    the customer has, each transfer counted once."""
    entries = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/transactions")
    return Counter(kind for _, kind in {(e["transfer_id"], e["kind"]) for e in entries})


async def served_by(stack: Stack, customer_id: str) -> dict[str, int]:
    """`api_calls` per upstream, as `GET /v1/usage?group_by=upstream` reports them."""
    await stack.runtime.drain()
    usage = await stack.operator.ok(
        "GET",
        "/v1/usage",
        params={"customer_id": customer_id, "meter": "api_calls", "group_by": "upstream"},
    )
    return {bucket["group"]: bucket["value"] for bucket in usage["buckets"]}


async def event_upstreams(stack: Stack, customer_id: str) -> set[str | None]:
    """The `upstream` column of every usage event the customer has."""
    await stack.runtime.drain()
    async with stack.runtime.db.engine.connect() as conn:
        rows = await conn.execute(
            select(UsageEvent.upstream).where(UsageEvent.customer_id == customer_id)
        )
        return {upstream for (upstream,) in rows}


def bodies(fake: FakeUpstream) -> list[str]:
    """The model names `fake` was asked for, in order."""
    return [seen.body["model"] for seen in fake.requests]


async def assert_charged_once(stack: Stack, customer_id: str, *, upstream: str) -> None:
    """One hold, one capture of the call's real price, no void; every usage event names
    `upstream`, and so does the usage API."""
    balance = await settled(stack, customer_id)
    assert balance["available_micros"] == CREDITS_MICROS - CHAT_COST_MICROS
    kinds = await ledger_kinds(stack, customer_id)
    assert (kinds["hold"], kinds["capture"], kinds["void"]) == (1, 1, 0), kinds
    assert await event_upstreams(stack, customer_id) == {upstream}
    assert await served_by(stack, customer_id) == {upstream: 1}


async def assert_nothing_charged(stack: Stack, customer_id: str) -> None:
    """One hold, voided; the wallet is whole and no usage was recorded."""
    balance = await settled(stack, customer_id)
    assert balance["available_micros"] == CREDITS_MICROS
    kinds = await ledger_kinds(stack, customer_id)
    assert (kinds["hold"], kinds["capture"], kinds["void"]) == (1, 0, 1), kinds
    assert await event_upstreams(stack, customer_id) == set()


class TestFallsBack:
    @pytest.mark.parametrize("kind", list(FIRST_FAILS))
    async def test_whole_answer_comes_from_the_backup_charged_once(
        self, stack: Stack, upstream: FakeUpstream, backup: FakeUpstream, kind: str
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        raw = await client(stack, key).chat.completions.with_raw_response.create(
            model=f"fb-{kind}", messages=MESSAGES
        )
        assert raw.parse().choices[0].message.content == ANSWER
        assert raw.headers["x-tollhouse-upstream"] == "backup"
        assert bodies(backup) == ["echo"]
        if kind != "refused":
            assert len(upstream.requests) == 1  # the first upstream was asked once
        await assert_charged_once(stack, customer_id, upstream="backup")

    @pytest.mark.parametrize("kind", list(FIRST_FAILS))
    async def test_stream_comes_from_the_backup_charged_once(
        self, stack: Stack, upstream: FakeUpstream, backup: FakeUpstream, kind: str
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        async with client(stack, key).chat.completions.with_streaming_response.create(
            model=f"fb-{kind}", messages=MESSAGES, stream=True
        ) as response:
            assert response.headers["x-tollhouse-upstream"] == "backup"
            text = "".join(
                [chunk.choices[0].delta.content or "" async for chunk in await response.parse()]
            )
        assert text == ANSWER
        assert bodies(backup) == ["echo"]
        if kind != "refused":
            assert len(upstream.requests) == 1  # the first upstream was asked once
        await assert_charged_once(stack, customer_id, upstream="backup")

    async def test_one_upstream_model_is_served_and_named_as_before(
        self, stack: Stack, upstream: FakeUpstream
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        raw = await client(stack, key).chat.completions.with_raw_response.create(
            model="test-chat", messages=MESSAGES
        )
        assert raw.headers["x-tollhouse-upstream"] == "primary"
        assert bodies(upstream) == ["echo"]
        await assert_charged_once(stack, customer_id, upstream="primary")


class TestDoesNotFallBack:
    async def test_a_400_is_passed_through_and_costs_nothing(
        self, stack: Stack, backup: FakeUpstream
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        with pytest.raises(openai.BadRequestError) as caught:
            await client(stack, key).chat.completions.create(model="fb-400", messages=MESSAGES)
        assert caught.value.response.headers["x-tollhouse-upstream"] == "primary"
        assert backup.requests == []
        await assert_nothing_charged(stack, customer_id)

    async def test_a_stream_broken_midway_is_not_sent_again(
        self, stack: Stack, upstream: FakeUpstream, backup: FakeUpstream
    ) -> None:
        """The answer started (the client holds a 200 stream) when the upstream dropped the
        connection after two chunks: the stream ends there, charged (as any broken stream)
        for the prompt and the text delivered, and the backup is never asked. (Whether the
        two chunks get through depends on whether the gateway read them before the drop.)"""
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        stream = await client(stack, key).chat.completions.create(
            model="fb-broken", messages=MESSAGES, stream=True
        )
        text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream])
        assert text in ("", "Hello", "Hello from")
        assert bodies(upstream) == ["broken-stream"]
        assert backup.requests == []
        balance = await settled(stack, customer_id)
        usage = await stack.operator.ok("GET", "/v1/usage", params={"customer_id": customer_id})
        totals = {bucket["meter"]: bucket["value"] for bucket in usage["buckets"]}
        tokenizer = stack.runtime.catalog.model("fb-broken").tokenizer
        assert totals["output_tokens"] == count_tokens(text, tokenizer)
        assert CREDITS_MICROS - balance["available_micros"] == (
            totals["input_tokens"] * INPUT_MICROS_PER_TOKEN
            + totals["output_tokens"] * OUTPUT_MICROS_PER_TOKEN
        )
        kinds = await ledger_kinds(stack, customer_id)
        assert (kinds["hold"], kinds["capture"], kinds["void"]) == (1, 1, 0), kinds
        assert await event_upstreams(stack, customer_id) == {"primary"}


class TestEveryUpstreamFails:
    async def test_the_last_5xx_is_502_and_the_hold_is_voided(
        self, stack: Stack, upstream: FakeUpstream, backup: FakeUpstream
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        with pytest.raises(openai.APIStatusError) as caught:
            await client(stack, key).chat.completions.create(model="fb-all-fail", messages=MESSAGES)
        assert caught.value.status_code == 502
        assert caught.value.body["code"] == "upstream-error"  # type: ignore[index]
        assert "'backup' answered 503" in caught.value.message
        assert (bodies(upstream), bodies(backup)) == (["error-500"], ["error-503"])
        await assert_nothing_charged(stack, customer_id)

    async def test_the_last_timeout_is_504_and_the_hold_is_voided(
        self, stack: Stack, backup: FakeUpstream
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        with pytest.raises(openai.APIStatusError) as caught:
            await client(stack, key).chat.completions.create(
                model="fb-all-slow", messages=MESSAGES, stream=True
            )
        assert caught.value.status_code == 504
        assert bodies(backup) == ["slow"]
        await assert_nothing_charged(stack, customer_id)

    async def test_the_last_429_is_passed_through_and_the_hold_is_voided(
        self, stack: Stack, upstream: FakeUpstream, backup: FakeUpstream
    ) -> None:
        customer_id, key = await stack.customer(credits_micros=CREDITS_MICROS)
        with pytest.raises(openai.RateLimitError) as caught:
            await client(stack, key).chat.completions.create(model="fb-all-429", messages=MESSAGES)
        assert caught.value.response.headers["x-tollhouse-upstream"] == "backup"
        assert (bodies(upstream), bodies(backup)) == (["error-429"], ["error-429"])
        await assert_nothing_charged(stack, customer_id)


async def test_weighted_selection_spreads_calls_and_keeps_priorities(
    stack: Stack, upstream: FakeUpstream, backup: FakeUpstream, third: FakeUpstream
) -> None:
    """`primary` (weight 3) and `backup` (weight 1) share priority 1: about 3/4 and 1/4 of
    the calls (binomial, n=120: the bounds are about 4 standard deviations out); `third`
    (priority 2) is only a fallback and is never asked while they answer."""
    customer_id, key = await stack.customer(plan="lifetime", credits_micros=CREDITS_MICROS)
    openai_client = client(stack, key)
    named: Counter[str] = Counter()
    for _ in range(WEIGHTED_CALLS):
        raw = await openai_client.chat.completions.with_raw_response.create(
            model="fb-weighted", messages=MESSAGES
        )
        named[raw.headers["x-tollhouse-upstream"]] += 1
    assert third.requests == []
    assert (len(upstream.requests), len(backup.requests)) == (named["primary"], named["backup"])
    assert named["primary"] + named["backup"] == WEIGHTED_CALLS
    assert 70 <= named["primary"] <= 108
    assert await served_by(stack, customer_id) == dict(named)
    balance = await settled(stack, customer_id)
    assert balance["available_micros"] == CREDITS_MICROS - WEIGHTED_CALLS * CHAT_COST_MICROS
