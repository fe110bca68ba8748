"""Idempotency keys under retries and races, across four `tollhouse serve` processes.

Story: clients retry money-moving calls: the same idempotency key 5 times in a row, then 20
times at once, each spread over the four processes. A credit grant takes effect once and
every reply has the first one's body (the first is 201, every replay 200, as every create
route answers a replay). An authorization holds once and every reply names that hold (replays leave out
`balance_micros` and the rate-limit `headers`, which belong to the first decision). A usage
event id counts once (the replies count it as accepted once, then as a duplicate). The same
key with another body is 422 `idempotency-key-reused`, as the IETF draft "The
Idempotency-Key HTTP Header Field" (draft-ietf-httpapi-idempotency-key-header) answers it,
and changes nothing. The ledger checker finds nothing afterwards.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.load_cluster import LOAD_MODEL, Reply, load_cluster
from tests.e2e.load_cluster import client as http_client
from tests.support.ledger_check import assert_consistent, assert_counted_once
from tests.support.upstream import FakeUpstream

pytestmark = pytest.mark.load

IN_A_ROW = 5
AT_ONCE = 20
GRANT_MICROS = 5_000
HOLD_MICROS = 300
WALLET_MICROS = 100_000

Send = Callable[[int, dict[str, Any]], Awaitable[Reply]]


async def retried(send: Send, body: dict[str, Any]) -> list[Reply]:
    """`body` sent IN_A_ROW times one after the other, then AT_ONCE times at once; request
    n goes to process n mod 4."""
    in_a_row = [await send(n, body) for n in range(IN_A_ROW)]
    at_once = await asyncio.gather(*(send(n, body) for n in range(AT_ONCE)))
    return in_a_row + list(at_once)


def assert_reused(response: Reply) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["type"].endswith("/idempotency-key-reused"), response.text


async def test_retried_keys_take_effect_once_and_a_changed_body_is_422(
    tmp_path: Path, upstream: FakeUpstream, redis_url: str
) -> None:
    async with load_cluster(tmp_path, upstream, redis_url) as c:
        customer_id, key = await c.customer(plan="lifetime", credits_micros=WALLET_MICROS)
        grants = f"/v1/customers/{customer_id}/credits/grants"
        async with (
            http_client(c.operator_key, AT_ONCE) as operator,
            http_client(key, AT_ONCE) as customer,
        ):

            async def grant(n: int, body: dict[str, Any]) -> Reply:
                return await operator.post(f"{c.url(n)}{grants}", json=body)

            async def authorize(n: int, body: dict[str, Any]) -> Reply:
                return await customer.post(f"{c.url(n)}/v1/authorize", json=body)

            async def record(n: int, body: dict[str, Any]) -> Reply:
                return await customer.post(f"{c.url(n)}/v1/usage/events", json=body)

            # a grant: one effect, the first reply every time
            for idempotency_key in ("grant-1", "grant-2"):
                body: dict[str, Any] = {
                    "amount_micros": GRANT_MICROS,
                    "idempotency_key": idempotency_key,
                }
                replies = await retried(grant, body)
                assert {r.text for r in replies} == {replies[0].text}, [r.text for r in replies]
                statuses = sorted(r.status_code for r in replies)
                assert statuses == [200] * (IN_A_ROW + AT_ONCE - 1) + [201]
                assert_reused(await grant(1, {**body, "amount_micros": GRANT_MICROS + 1}))
            wallet = WALLET_MICROS + 2 * GRANT_MICROS
            assert await c.balance(customer_id) == (wallet, 0)

            # an authorization: one hold, named by every reply
            body = {
                "model": LOAD_MODEL,
                "usage": {"output_tokens": HOLD_MICROS},
                "idempotency_key": "call-1",
            }
            replies = await retried(authorize, body)
            assert {r.status_code for r in replies} == {200}, [r.text for r in replies]
            answers = [r.json() for r in replies]
            assert len({a["hold"]["id"] for a in answers}) == 1
            first = [r for r in replies if r.headers.get("Idempotent-Replayed") != "true"]
            assert len(first) == 1
            assert first[0].json()["balance_micros"] == wallet - HOLD_MICROS
            replayed_fields = ("balance_micros", "headers")
            same = [{k: v for k, v in a.items() if k not in replayed_fields} for a in answers]
            assert all(answer == same[0] for answer in same), same
            other = {**body, "usage": {"output_tokens": HOLD_MICROS + 1}}
            assert_reused(await authorize(2, other))
            assert await c.balance(customer_id) == (wallet - HOLD_MICROS, HOLD_MICROS)

            # a usage event: counted once
            event = {"id": "job-1", "meter": "images", "value": 3}
            replies = await retried(record, {"events": [event]})
            assert {r.status_code for r in replies} == {200}, [r.text for r in replies]
            counts = [(r.json()["accepted"], r.json()["duplicates"]) for r in replies]
            assert sorted(counts) == [(0, 1)] * (IN_A_ROW + AT_ONCE - 1) + [(1, 0)]
            assert_reused(await record(3, {"events": [{**event, "value": 4}]}))

        await assert_counted_once(c.database_url, customer_id, ["job-1"])
        usage = await c.operator.ok("GET", "/v1/usage", params={"customer_id": customer_id})
        assert {b["meter"]: b["value"] for b in usage["buckets"]}["images"] == 3
        await assert_consistent(c.database_url)
