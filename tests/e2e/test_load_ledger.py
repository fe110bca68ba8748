"""Load on one wallet across four `tollhouse serve` processes: no overdraft, no refusal while
credit was free, no double resolution, no 5xx; the ledger checker finds nothing afterwards.

Story: a $1 wallet is hit by 10,000 holds of 1 to 500 micros from 200 concurrent clients,
half through `POST /v1/authorize` (the hold stays open) and half through the gateway (a chat
completion whose hold is captured whole: `load-chat` on `max-usage` costs exactly its
estimate). Nothing is ever released in that run, so the wallet's free credit only falls: if
any hold was refused with 402, the credit still free at the end must be below the smallest
refused amount; otherwise a refusal came while enough was free. Then 2,000 holds are each
hit by a capture, a void and a capture of another amount at once, each through another
process: exactly one wins, the other two get 409, and the balance is exact to the micro.

The checks are on invariants and final state, never on timings: the machine is small and
shared, so the requests may take long.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from functools import partial
from pathlib import Path

import pytest
from tests.e2e.load_cluster import LOAD_MODEL, Reply, load_cluster
from tests.e2e.load_cluster import client as http_client
from tests.e2e.test_multiprocess import eventually
from tests.support.ledger_check import assert_consistent
from tests.support.upstream import FakeUpstream

pytestmark = pytest.mark.load

WALLET_MICROS = 1_000_000
HOLDS = 10_000
CLIENTS = 200
MAX_HOLD_MICROS = 500
SEED = 23

RACED_HOLDS = 2_000
RACED_HOLD_MICROS = 100
FIRST_CAPTURE_MICROS = 60
SECOND_CAPTURE_MICROS = 70
RACES_AT_ONCE = 100
"""Holds raced at the same time (each by three requests)."""


async def test_ten_thousand_holds_on_one_wallet_never_overdraw_nor_refuse_free_credit(
    tmp_path: Path, upstream: FakeUpstream, redis_url: str
) -> None:
    rng = random.Random(SEED)
    plan = [(rng.randint(1, MAX_HOLD_MICROS), rng.random() < 0.5) for _ in range(HOLDS)]
    async with load_cluster(tmp_path, upstream, redis_url) as c:
        customer_id, key = await c.customer(plan="lifetime", credits_micros=WALLET_MICROS)
        results: list[tuple[int, bool, Reply]] = []
        async with http_client(key, CLIENTS) as http:

            async def one(n: int, amount: int, through_gateway: bool) -> None:
                url = c.url(n)
                if through_gateway:
                    body = {
                        "model": LOAD_MODEL,
                        "messages": [{"role": "user", "content": "hi"}],
                        "max_tokens": amount,
                    }
                    response = await http.post(f"{url}/v1/chat/completions", json=body)
                else:
                    estimate = {"model": LOAD_MODEL, "usage": {"output_tokens": amount}}
                    response = await http.post(f"{url}/v1/authorize", json=estimate)
                results.append((amount, through_gateway, response))

            async def worker(first: int) -> None:
                for n in range(first, HOLDS, CLIENTS):
                    await one(n, *plan[n])

            await asyncio.gather(*(worker(first) for first in range(CLIENTS)))

        statuses = Counter(response.status_code for _, _, response in results)
        assert set(statuses) <= {200, 402}, [
            r.text for _, _, r in results if r.status_code not in (200, 402)
        ][:5]
        granted = [(a, gw) for a, gw, r in results if r.status_code == 200]
        refused = [a for a, _, r in results if r.status_code == 402]
        for _, gateway, response in results:
            if response.status_code == 402:
                problem = response.json()
                kind = problem["error"]["code"] if gateway else problem["type"].rsplit("/", 1)[1]
                assert kind == "insufficient-credit", response.text
        for amount, gateway, response in results:
            if response.status_code == 200 and not gateway:
                assert response.json()["hold"]["amount_micros"] == amount
        held = sum(a for a, gateway in granted if not gateway)
        captured = sum(a for a, gateway in granted if gateway)
        free = WALLET_MICROS - held - captured
        assert free >= 0  # no overdraft
        assert refused, "the run asks for more than the wallet has: some holds must be refused"
        # nothing was released, so free credit only fell: every refusal saw at most `free`
        assert free < min(refused), (free, sorted(refused)[:5])
        assert len(upstream.requests) == sum(1 for _, gateway in granted if gateway)

        # the gateway captures after answering: wait until every call is settled
        expected = (free, held)
        for server in range(len(c.servers)):
            assert await eventually(partial(c.balance, customer_id, server=server), expected) == (
                expected
            )
        await assert_consistent(c.database_url)


async def test_a_capture_a_void_and_a_second_capture_at_once_have_one_winner(
    tmp_path: Path, upstream: FakeUpstream, redis_url: str
) -> None:
    async with load_cluster(tmp_path, upstream, redis_url) as c:
        wallet = RACED_HOLDS * RACED_HOLD_MICROS
        customer_id, key = await c.customer(plan="lifetime", credits_micros=wallet)
        estimate = {"model": LOAD_MODEL, "usage": {"output_tokens": RACED_HOLD_MICROS}}
        async with http_client(key, 3 * RACES_AT_ONCE) as http:
            gate = asyncio.Semaphore(RACES_AT_ONCE)

            async def authorize(n: int) -> str:
                async with gate:
                    response = await http.post(f"{c.url(n)}/v1/authorize", json=estimate)
                assert response.status_code == 200, response.text
                return str(response.json()["hold"]["id"])

            hold_ids = await asyncio.gather(*(authorize(n) for n in range(RACED_HOLDS)))
            assert await c.balance(customer_id) == (0, wallet)

            async def race(n: int, hold_id: str) -> list[tuple[str, Reply]]:
                attempts = [
                    ("capture-60", "capture", {"amount_micros": FIRST_CAPTURE_MICROS}),
                    ("void", "void", None),
                    ("capture-70", "capture", {"amount_micros": SECOND_CAPTURE_MICROS}),
                ]
                async with gate:
                    responses = await asyncio.gather(
                        *(
                            http.post(f"{c.url(n + i)}/v1/holds/{hold_id}/{verb}", json=body)
                            for i, (_, verb, body) in enumerate(attempts)
                        )
                    )
                return [(name, r) for (name, _, _), r in zip(attempts, responses, strict=True)]

            races = await asyncio.gather(*(race(n, h) for n, h in enumerate(hold_ids)))

            winners: Counter[str] = Counter()
            for outcome in races:
                codes = sorted(r.status_code for _, r in outcome)
                assert codes == [200, 409, 409], [(name, r.text) for name, r in outcome]
                for _, response in outcome:
                    if response.status_code == 409:
                        assert response.json()["type"].endswith("/hold-not-open"), response.text
                (winner,) = [name for name, r in outcome if r.status_code == 200]
                winners[winner] += 1
            for hold_id, outcome in zip(hold_ids[:50], races[:50], strict=True):
                (winner,) = [name for name, r in outcome if r.status_code == 200]
                stored = (await http.get(f"{c.url(0)}/v1/holds/{hold_id}")).json()
                assert (stored["status"], stored["captured_micros"]) == {
                    "capture-60": ("captured", FIRST_CAPTURE_MICROS),
                    "capture-70": ("captured", SECOND_CAPTURE_MICROS),
                    "void": ("voided", 0),
                }[winner]

        spent = (
            winners["capture-60"] * FIRST_CAPTURE_MICROS
            + winners["capture-70"] * SECOND_CAPTURE_MICROS
        )
        assert sum(winners.values()) == RACED_HOLDS
        for server in range(len(c.servers)):
            assert await c.balance(customer_id, server=server) == (wallet - spent, 0)
        await assert_consistent(c.database_url)
