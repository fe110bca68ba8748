"""Four `tollhouse serve` processes run one customer's wallet dry: no call is served on credit
that was never held, and none is served free while the wallet had credit.

Story: an operator runs four processes on one PostgreSQL and one Redis. A customer with a
wallet of 20,000 micros keeps 400 chat completions in flight, spread round-robin over the four
processes, half of them streamed, until the wallet runs dry and calls get 402. Each call asks
for `max_tokens: 1`, so its hold (the prompt estimate plus one output token) is far below what
the upstream then reports (12 in, 7 out): every served call is charged its hold, then the
excess on the wallet. Ten rounds, a new customer each.

After each round, read from the database:

- every call answered 200 named a hold (`x-tollhouse-hold-id`) that is stored and captured:
  no call was served on a hold that was never committed;
- no usage event says `hold_lost`;
- every served call was charged its full price, or the wallet was empty when it was charged
  (`uncaptured_micros` only once nothing is left);
- what the served calls were charged is exactly what left the wallet, and nothing stays held.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine
from tests.e2e.test_multiprocess import SETTLE_SECONDS, Cluster, cluster
from tests.support.catalog import INPUT_MICROS_PER_TOKEN, OUTPUT_MICROS_PER_TOKEN
from tests.support.upstream import COMPLETION_TOKENS, PROMPT_TOKENS, FakeUpstream

PROCESSES = 4
IN_FLIGHT = 400
ROUNDS = 10
WALLET_MICROS = 20_000
CALL_MICROS = PROMPT_TOKENS * INPUT_MICROS_PER_TOKEN + COMPLETION_TOKENS * OUTPUT_MICROS_PER_TOKEN
"""What the upstream's usage of one call costs (26 micros): more than its hold."""
CALLS_PER_ROUND = 2 * WALLET_MICROS // CALL_MICROS
"""Twice what the wallet can pay for: the round ends with the wallet dry."""


def chat_body(stream: bool) -> dict[str, Any]:
    return {
        "model": "test-chat",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 1,
        "stream": stream,
    }


async def fire(key: str, urls: list[str]) -> list[tuple[int, str | None]]:
    """`CALLS_PER_ROUND` calls, `IN_FLIGHT` at a time, round-robin over `urls`, every other one
    streamed (read to its end); returns each call's status and hold id. (aiohttp's client:
    httpx's pool spends milliseconds of CPU per call at this concurrency, enough to stall this
    process's event loop, which also runs the upstream, for seconds.)"""
    gate = asyncio.Semaphore(IN_FLIGHT)
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=IN_FLIGHT)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:

        async def call(n: int) -> tuple[int, str | None]:
            async with gate:
                url = f"{urls[n % len(urls)]}/v1/chat/completions"
                body = chat_body(stream=n % 2 == 1)
                async with http.post(url, json=body, headers=headers) as response:
                    await response.read()
                    return response.status, response.headers.get("x-tollhouse-hold-id")

        return await asyncio.gather(*(call(n) for n in range(CALLS_PER_ROUND)))


async def settled(c: Cluster, customer_id: str) -> tuple[int, int]:
    """(available, held) once nothing is held any more (polled for `SETTLE_SECONDS` at most)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while (balance := await c.balance(customer_id))[1] and loop.time() < deadline:
        await asyncio.sleep(0.05)
    return balance


async def stored_round(
    database_url: str, customer_id: str, served: int
) -> tuple[dict[str, Any], list[Any]]:
    """The customer's holds (id -> (status, captured)) and its `api_calls` events' properties,
    read again until there are `served` events (they are written after each capture, not
    waited for) or `SETTLE_SECONDS` passed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_SECONDS
    while True:
        holds, events = await _read_round(database_url, customer_id)
        if len(events) >= served or loop.time() > deadline:
            return holds, events
        await asyncio.sleep(0.1)


async def _read_round(database_url: str, customer_id: str) -> tuple[dict[str, Any], list[Any]]:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            holds = {
                row.id: (row.status, row.captured_amount)
                for row in await conn.execute(
                    text(
                        "SELECT id, status, captured_amount FROM ledger_holds "
                        "WHERE customer_id = :customer"
                    ),
                    {"customer": customer_id},
                )
            }
            events = [
                row.properties if isinstance(row.properties, dict) else json.loads(row.properties)
                for row in await conn.execute(
                    text(
                        "SELECT properties FROM usage_events "
                        "WHERE customer_id = :customer AND meter = 'api_calls'"
                    ),
                    {"customer": customer_id},
                )
            ]
    finally:
        await engine.dispose()
    return holds, events


async def test_four_processes_run_a_wallet_dry_without_serving_unheld_or_free_calls(
    tmp_path: Path, upstream: FakeUpstream, redis_url: str
) -> None:
    async with cluster(tmp_path, upstream, redis_url, processes=PROCESSES) as c:
        urls = [server.base_url for server in c.servers]
        for round_number in range(ROUNDS):
            # lifetime: no rate limit, so only the wallet decides
            customer_id, key = await c.customer(plan="lifetime", credits_micros=WALLET_MICROS)
            results = await fire(key, urls)

            statuses = Counter(status for status, _ in results)
            assert set(statuses) == {200, 402}, (round_number, statuses)
            served = [hold_id for status, hold_id in results if status == 200]
            assert all(served), "a served call named no hold"

            available, held = await settled(c, customer_id)
            assert held == 0, (round_number, available, held)
            holds, events = await stored_round(c.database_url, customer_id, len(served))

            never_stored = [hold_id for hold_id in served if hold_id not in holds]
            assert never_stored == [], f"round {round_number}: served on unstored holds"
            assert {holds[hold_id][0] for hold_id in served} == {"captured"}
            assert len(events) == len(served)
            assert [e for e in events if e.get("hold_lost")] == []
            short = [e for e in events if e["cost_micros"] < CALL_MICROS]
            for event in short:  # charged less than its price: only once the wallet was empty
                assert event["cost_micros"] + event["uncaptured_micros"] == CALL_MICROS
            assert available == 0 or not short, (round_number, available, short)
            charged = sum(e["cost_micros"] for e in events)
            assert charged == WALLET_MICROS - available, (round_number, charged, available)
