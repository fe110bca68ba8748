"""One rate limit shared by four `tollhouse serve` processes on one Redis, under steady load.

Story: a category allows 10 requests a second with bursts of 20 (`requests_per_minute: 600`,
`burst: 20`). A customer's application offers 100 authorizations a second for 60 seconds,
evenly paced and spread over the four processes. At most 20 + 10 * 60 = 620 are accepted,
and not far fewer (a real limiter, not one that refuses everything), the rest get 429 with
`Retry-After`, nothing gets a 5xx, and the ledger is consistent afterwards.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import pytest
from tests.e2e.load_cluster import Reply, load_cluster
from tests.e2e.load_cluster import client as http_client
from tests.support.ledger_check import assert_consistent
from tests.support.upstream import FakeUpstream

pytestmark = pytest.mark.load

RATE_PER_SECOND = 10
BURST = 20
OFFERED_PER_SECOND = 100
OFFERED_SECONDS = 60
FEWEST_ACCEPTED = 580
"""Below this the limiter refused requests it had room for."""
LATE_SECONDS = 5.0
"""How far behind its schedule the client may fall (a busy machine) before the offered load
is not what the test claims; then it fails rather than check another load."""
MODEL = "limited-call"
CALL_MICROS = 1


async def test_a_limit_of_10_per_second_burst_20_holds_across_four_processes(
    tmp_path: Path, upstream: FakeUpstream, redis_url: str
) -> None:
    changes = {
        "categories": {
            "limited": {"requests_per_minute": RATE_PER_SECOND * 60, "burst": BURST},
        },
        "models": {
            MODEL: {
                "category": "limited",
                "upstream": "fake",
                "upstream_model": "echo",
                "price": {"per_request": "0.000001"},
            }
        },
    }
    async with load_cluster(tmp_path, upstream, redis_url, **changes) as c:
        customer_id, key = await c.customer(plan="free", credits_micros=1_000_000)
        offered = OFFERED_PER_SECOND * OFFERED_SECONDS
        async with http_client(key, OFFERED_PER_SECOND) as http:
            for server in range(len(c.servers)):  # warm each process's key cache
                assert (await http.get(f"{c.url(server)}/v1/customers/me")).status_code == 200
            loop = asyncio.get_running_loop()
            start = loop.time() + 0.5
            sent_late: list[float] = []

            async def one(n: int) -> tuple[Reply, float]:
                await asyncio.sleep(max(0.0, start + n / OFFERED_PER_SECOND - loop.time()))
                sent_late.append(loop.time() - (start + n / OFFERED_PER_SECOND))
                reply = await http.post(
                    f"{c.url(n)}/v1/authorize", json={"model": MODEL, "usage": {"requests": 1}}
                )
                return reply, loop.time()

            answered = await asyncio.gather(*(one(n) for n in range(offered)))

        responses = [reply for reply, _ in answered]
        statuses = Counter(r.status_code for r in responses)
        assert set(statuses) <= {200, 429}, statuses
        accepted = statuses[200]
        # every acceptance was decided between the first send and its own answer: a limiter
        # of RATE with BURST admits at most BURST + RATE * that window, MOST_ACCEPTED when
        # the window is the OFFERED_SECONDS (a late client widens it by its delay)
        window = max(at for reply, at in answered if reply.status_code == 200) - start
        assert accepted <= BURST + RATE_PER_SECOND * window, (statuses, window)
        assert accepted >= FEWEST_ACCEPTED, statuses
        assert max(sent_late) < LATE_SECONDS, f"the client fell {max(sent_late):.2f} s behind"
        assert window < OFFERED_SECONDS + LATE_SECONDS
        for response in responses:
            if response.status_code == 429:
                assert response.json()["type"].endswith("/rate-limited"), response.text
                assert int(response.headers["Retry-After"]) >= 1
        assert await c.balance(customer_id) == (
            1_000_000 - accepted * CALL_MICROS,
            accepted * CALL_MICROS,
        )
        await assert_consistent(c.database_url)
