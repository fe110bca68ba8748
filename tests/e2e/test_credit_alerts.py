"""Low-credit alerts over HTTP: set by the customer or an operator, seen on gateway calls as
`x-tollhouse-credits-low`, and written to `/v1/events` once per crossing.

`test-chat` holds about 210 micros (its prompt counted locally at 1 micro a token, 100 output
tokens at 2) and costs 26: a wallet of 1,000 micros with a threshold of 900 is below it once a
call is held.
"""

from __future__ import annotations

import httpx
from tests.e2e.conftest import Stack
from tests.support.catalog import SESSION_PRICE_MICROS
from tests.support.server import Api

CHAT = {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}


async def chat(stack: Stack, key: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        response = await http.post(
            "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {key}"}
        )
    assert response.status_code == 200, response.text
    await stack.runtime.drain()
    return response


async def low_events(stack: Stack, customer_id: str) -> list[dict[str, object]]:
    page = await stack.operator.ok(
        "GET", "/v1/events", params={"customer_id": customer_id, "type": "credits.low"}
    )
    data: list[dict[str, object]] = page["data"]
    return data


async def test_a_crossing_warns_every_call_and_fires_once(stack: Stack) -> None:
    customer_id, key = await stack.customer(credits_micros=1_000)
    async with Api(stack.base_url, key) as own:
        alert = await own.ok(
            "PUT", "/v1/customers/me/credit-alerts", json={"threshold_micros": 900}
        )
        assert (alert["state"], alert["effective_threshold_micros"]) == ("armed", 900)
        first = await chat(stack, key)
        second = await chat(stack, key)
        assert first.headers["x-tollhouse-credits-low"] == "true"
        assert second.headers["x-tollhouse-credits-low"] == "true"
        events = await low_events(stack, customer_id)
        assert len(events) == 1
        data = events[0]["data"]
        assert isinstance(data, dict) and data["threshold_micros"] == 900
        assert 0 < data["available_micros"] < 900  # the balance the first call's hold left
        shown = await own.ok("GET", f"/v1/customers/{customer_id}/credit-alerts")
        assert shown["state"] == "low"

    await stack.operator.ok(
        "POST",
        f"/v1/customers/{customer_id}/credits/grants",
        json={"amount_micros": 1_000_000, "idempotency_key": "top-up"},
    )
    above = await chat(stack, key)
    assert "x-tollhouse-credits-low" not in above.headers
    assert len(await low_events(stack, customer_id)) == 1


async def test_only_the_customer_and_operators_set_its_alert(stack: Stack) -> None:
    customer_id, _ = await stack.customer()
    _, other_key = await stack.customer()
    async with Api(stack.base_url, other_key) as other:
        refused = await other.client.put(
            f"/v1/customers/{customer_id}/credit-alerts", json={"threshold_percent": 10}
        )
        assert refused.status_code == 404
    both = await stack.operator.client.put(
        f"/v1/customers/{customer_id}/credit-alerts",
        json={"threshold_micros": 1, "threshold_percent": 10},
    )
    assert both.status_code == 422
    set_ = await stack.operator.ok(
        "PUT", f"/v1/customers/{customer_id}/credit-alerts", json={"threshold_percent": 10}
    )
    assert set_["effective_threshold_micros"] == 100_000  # 10% of the 1,000,000 seed grant
    removed = await stack.operator.client.delete(f"/v1/customers/{customer_id}/credit-alerts")
    assert removed.status_code == 204
    gone = await stack.operator.client.get(f"/v1/customers/{customer_id}/credit-alerts")
    assert gone.status_code == 404


async def test_a_session_fee_that_crosses_the_threshold_fires_it(stack: Stack) -> None:
    """Every hold is watched, not only gateway calls: here a flat session's fee."""
    customer_id, key = await stack.customer(credits_micros=SESSION_PRICE_MICROS + 500_000)
    async with Api(stack.base_url, key) as own:
        await own.ok("PUT", "/v1/customers/me/credit-alerts", json={"threshold_micros": 600_000})
        await own.ok("POST", "/v1/sessions", json={"product": "analysis", "idempotency_key": "s"})
    await stack.runtime.drain()
    events = await low_events(stack, customer_id)
    assert len(events) == 1
    data = events[0]["data"]
    assert isinstance(data, dict) and data["available_micros"] == 500_000
