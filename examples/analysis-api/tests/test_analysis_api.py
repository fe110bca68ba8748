"""The analysis API end to end over HTTP: refused without a session, answered inside a $1
day paid from the wallet, each answer naming its session; the indicators' values; bad
input refused."""

from __future__ import annotations

from pathlib import Path

import httpx
from examples.conftest import Servers

EXAMPLE = Path(__file__).parents[1]
SERIES = {"prices": [1, 2, 1, 2], "period": 2}


async def test_indicators_need_a_session_which_pays_and_is_named_in_each_answer(
    servers: Servers,
) -> None:
    example = servers.example(EXAMPLE, "analysis-sessions")
    customer_id, key = example.customer("2.00")
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=example.base_url) as http:
        outside = await http.post("/v1/indicators/rsi", json=SERIES, headers=auth)
        started = await http.post(
            "/v1/sessions", json={"product": "analysis-day", "idempotency_key": "day-1"},
            headers=auth,
        )  # fmt: skip
        rsi = await http.post("/v1/indicators/rsi", json=SERIES, headers=auth)
        sma = await http.post("/v1/indicators/sma", json=SERIES, headers=auth)
        session = await http.get(f"/v1/sessions/{started.json()['id']}", headers=auth)
        short = await http.post("/v1/indicators/rsi", json={"prices": [1]}, headers=auth)

    assert outside.status_code == 402
    assert outside.headers["content-type"] == "application/problem+json"
    assert outside.json()["type"].endswith("/session-required")
    assert started.status_code == 201, started.text
    session_id = started.json()["id"]
    assert rsi.status_code == 200, rsi.text
    assert rsi.json() == {"values": [None, None, 50.0, 75.0], "session_id": session_id}
    assert rsi.headers["x-tollhouse-session-id"] == session_id
    assert sma.json()["values"] == [None, 1.5, 1.5, 1.5]
    assert session.json()["tokens_used"] == 8  # four prices per call, two calls
    assert short.status_code == 422  # one price: refused before any work, nothing counted
    assert example.available_micros(customer_id) == 1_000_000  # $2 less the $1 day
