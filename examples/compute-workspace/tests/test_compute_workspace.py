"""Workspaces rented by the hour over HTTP: the service starts, heartbeats and stops metered
sessions on a separate `tollhouse serve` through the SDK; a workspace whose wallet runs dry
is stopped by tollhouse (reason `credit`) and billed what the wallet held, never more.

The `compute` preset with short runs (a 2 s minimum, 1 s slices) and no included credits;
the `small` tier costs $0.10 an hour (about 28 micros a second)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx
from examples.conftest import Servers, environment

from tollhouse.keys import generate_key

EXAMPLE = Path(__file__).parents[1]
SHORT_RUNS = {
    "min_run: 600": "min_run: 2",
    "slice: 300": "slice: 1",
    'included_credits: "1.00"': 'included_credits: "0"',
}


async def until_stopped(http: httpx.AsyncClient, url: str, auth: dict[str, str]) -> dict[str, Any]:
    for _ in range(300):
        shown: dict[str, Any] = (await http.get(url, headers=auth)).json()
        if shown["status"] == "stopped":
            return shown
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} kept running")


async def test_workspaces_run_until_stopped_or_until_the_credits_run_out(servers: Servers) -> None:
    operator_key = generate_key()
    tollhouse = servers.example(
        EXAMPLE, "compute", app=None, replace=SHORT_RUNS, TOLLHOUSE_BOOTSTRAP_KEY=operator_key
    )
    service = servers.start(
        [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1"], EXAMPLE,
        environment(TOLLHOUSE_URL=tollhouse.base_url, TOLLHOUSE_API_KEY=operator_key,
                    WORKSPACE_HEARTBEAT_SECONDS="0.2"),
    )  # fmt: skip
    short_id, short_key = tollhouse.customer("0.0002")  # 200 micros: about 7 s of `small`
    rich_id, rich_key = tollhouse.customer("1.00")
    short, rich = ({"Authorization": f"Bearer {k}"} for k in (short_key, rich_key))

    async with httpx.AsyncClient(base_url=service) as http:
        big = await http.post("/v1/workspaces", json={"tier": "large"}, headers=rich)
        dry = await http.post("/v1/workspaces", json={"tier": "small"}, headers=short)
        kept = await http.post("/v1/workspaces", json={"tier": "small"}, headers=rich)
        peek = await http.get(f"/v1/workspaces/{kept.json()['id']}", headers=short)
        ran_dry = await until_stopped(http, f"/v1/workspaces/{dry.json()['id']}", short)
        await asyncio.sleep(1)
        stopped = await http.delete(f"/v1/workspaces/{kept.json()['id']}", headers=rich)

    assert big.status_code == 403  # `large` is not in the free plan
    assert big.json()["type"].endswith("/resource-tier-not-in-plan")
    assert dry.status_code == 201 and kept.status_code == 201, (dry.text, kept.text)
    assert peek.status_code == 404  # another customer's workspace
    assert ran_dry["stopped_reason"] == "credit"
    assert 0 < ran_dry["cost_micros"] <= 200
    assert tollhouse.available_micros(short_id) == 200 - ran_dry["cost_micros"]
    assert stopped.json()["status"] == "stopped"
    assert stopped.json()["stopped_reason"] == "terminated"
    assert stopped.json()["cost_micros"] > 0
    assert tollhouse.available_micros(rich_id) == 1_000_000 - stopped.json()["cost_micros"]
