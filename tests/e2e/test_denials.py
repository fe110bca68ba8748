"""The denial log: gateway calls and sidecar authorizations refused with 402, 403 or 429 are
written (in the background, one row each) with the customer's plan and the problem's code;
other errors are not denials."""

from __future__ import annotations

from datetime import timedelta

import httpx
from tests.e2e.conftest import Stack
from tests.e2e.test_dashboard import Browser, add_user
from tests.e2e.test_dashboard import browser as browser  # the fixture

from tollhouse.metering import denials
from tollhouse.users import Role

CHAT = {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}


async def test_refused_calls_are_logged_with_plan_and_reason(stack: Stack) -> None:
    customer_id, key = await stack.customer(credits_micros=0)
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        broke = await http.post("/v1/chat/completions", json=CHAT, headers=auth)
        unknown = await http.post(
            "/v1/chat/completions", json={**CHAT, "model": "no-such-model"}, headers=auth
        )
        sidecar = await http.post(
            "/v1/authorize",
            json={"model": "test-chat", "usage": {"input_tokens": 10}},
            headers=auth,
        )
        anonymous = await http.post(
            "/v1/chat/completions", json=CHAT, headers={"Authorization": "Bearer th_test_nope"}
        )
    assert (broke.status_code, sidecar.status_code) == (402, 402), (broke.text, sidecar.text)
    assert (unknown.status_code, anonymous.status_code) == (404, 401)
    await stack.runtime.drain()

    async with stack.runtime.db.transaction() as session:
        logged = await denials.recent(session, customer_id)
        now = stack.runtime.clock.now()
        counts = await denials.counts_by_plan(
            session, start=now - timedelta(hours=1), end=now + timedelta(seconds=1)
        )
    assert [(d.reason, d.model, d.route) for d in logged] == [
        ("insufficient-credit", "test-chat", "/v1/authorize"),
        ("insufficient-credit", "test-chat", "/v1/chat/completions"),
    ]
    assert all(d.key_id is not None and d.key_id.startswith("key_") for d in logged)
    assert denials.DenialCount("free", "insufficient-credit", 2) in counts


async def test_the_portal_overview_lists_the_customers_refused_calls(
    stack: Stack, browser: Browser
) -> None:
    customer_id, key = await stack.customer(credits_micros=0)
    _, other_key = await stack.customer(credits_micros=0)
    async with httpx.AsyncClient(base_url=stack.base_url) as http:
        for k in (key, other_key):
            refused = await http.post(
                "/v1/chat/completions", json=CHAT, headers={"Authorization": f"Bearer {k}"}
            )
            assert refused.status_code == 402
        await stack.runtime.drain()
    await add_user(stack, "ada@example.com", Role.MEMBER, customer_id)
    await browser.sign_in("ada@example.com")
    overview = await browser.request("GET", "/dashboard/portal")

    table = overview.text[overview.text.index('id="denials"') :]
    rows = table[: table.index("</table>")].count("<tr>") - 1  # the header row
    assert rows == 1  # its own refusal, not the other customer's
    assert "insufficient-credit" in table and "/v1/chat/completions" in table
