"""The denial log: gateway calls and sidecar authorizations refused with 402, 403 or 429 are
written (in the background, one row each) with the customer's plan and the problem's code;
other errors are not denials."""

from __future__ import annotations

from datetime import timedelta

import httpx
from tests.e2e.conftest import Stack

from tollhouse.metering import denials

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
