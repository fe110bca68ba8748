"""Webhooks over the real server, on a SQLite file and on PostgreSQL, delivered by the worker
`serve` runs (no pass is called by hand).

The story: the operator registers an endpoint for `session.*` at a local receiver that
verifies every request per Standard Webhooks (reference library and the spec's algorithm);
the secret comes back once. A customer's key is refused every webhook route (403). The
customer starts a session: the sessions domain writes `session.started`, the worker delivers
it, signed, and the delivery log shows one succeeded attempt with its status and latency. A
manual retry sends it again with the same `webhook-id`. Disabled, the endpoint's deliveries
cannot be retried (409); removed, it is gone (404). A malformed URL is a 422 naming `url`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import Stack, running_stack
from tests.support.receiver import WebhookReceiver
from tests.support.server import Api
from tests.support.upstream import FakeUpstream

WAIT_SECONDS = 20.0


@pytest.fixture(params=["sqlite", "postgres"])
async def served(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: FakeUpstream
) -> AsyncIterator[Stack]:
    database_url = await create_postgres_database() if request.param == "postgres" else None
    try:
        async with running_stack(tmp_path, upstream, database_url=database_url) as stack:
            yield stack
    finally:
        if database_url is not None:
            await drop_postgres_database(database_url)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    started = WebhookReceiver()
    await started.start()
    yield started
    await started.stop()


async def until(condition: Callable[[], Any]) -> None:
    """Poll `condition` (sync or async) until it is true, `WAIT_SECONDS` at most."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            result = condition()
            if asyncio.iscoroutine(result):
                result = await result
            if result:
                return
            await asyncio.sleep(0.05)


async def test_session_event_is_delivered_signed_logged_and_retried(
    served: Stack, receiver: WebhookReceiver
) -> None:
    operator = served.operator
    created = await operator.client.post(
        "/v1/webhook-endpoints",
        json={"url": receiver.url, "event_types": ["session.*"], "description": "app"},
    )
    assert created.status_code == 201, created.text
    endpoint = created.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"] is True
    receiver.secret = endpoint["secret"]
    listed = await operator.ok("GET", "/v1/webhook-endpoints")
    assert [e["id"] for e in listed] == [endpoint["id"]] and "secret" not in listed[0]

    customer_id, key = await served.customer()
    async with Api(served.base_url, key) as customer:
        session = await customer.ok(
            "POST", "/v1/sessions", json={"product": "imaging", "idempotency_key": "s1"}
        )
        for method, path in [
            ("POST", "/v1/webhook-endpoints"),
            ("GET", "/v1/webhook-endpoints"),
            ("GET", f"/v1/webhook-endpoints/{endpoint['id']}"),
            ("PATCH", f"/v1/webhook-endpoints/{endpoint['id']}"),
            ("DELETE", f"/v1/webhook-endpoints/{endpoint['id']}"),
            ("GET", "/v1/webhook-deliveries"),
        ]:
            refused = await customer.client.request(method, path, json={"url": receiver.url})
            assert refused.status_code == 403, (method, path, refused.text)
            assert refused.headers["content-type"] == "application/problem+json"

    await until(lambda: receiver.effects)
    (event_id,) = receiver.effects
    body = receiver.requests[0].body
    assert b'"type":"session.started"' in body and session["id"].encode() in body
    assert customer_id.encode() in body

    async def log() -> dict[str, Any]:
        page = await operator.ok("GET", f"/v1/webhook-deliveries?endpoint_id={endpoint['id']}")
        return page["data"][0] if page["data"] else {}

    await until(lambda: _status_is(log, "succeeded"))
    delivery = await log()
    assert delivery["event_id"] == event_id and delivery["event_type"] == "session.started"
    assert delivery["attempt_count"] == 1
    (attempt,) = delivery["attempts"]
    assert attempt["status_code"] == 200 and attempt["succeeded"] is True
    assert attempt["latency_ms"] >= 0 and attempt["error"] is None

    retried = await operator.ok("POST", f"/v1/webhook-deliveries/{delivery['id']}/retry")
    assert retried["id"] == delivery["id"]
    await until(lambda: receiver.effects[event_id] == 2)
    assert [r.headers["webhook-id"] for r in receiver.requests] == [event_id, event_id]
    await until(lambda: _status_is(log, "succeeded"))

    disabled = await operator.ok(
        "PATCH", f"/v1/webhook-endpoints/{endpoint['id']}", json={"enabled": False}
    )
    assert disabled["disabled_reason"] == "disabled by the operator"
    refused = await operator.client.post(f"/v1/webhook-deliveries/{delivery['id']}/retry")
    assert refused.status_code == 409
    assert refused.json()["type"].endswith("/webhook-endpoint-disabled")

    removed = await operator.ok("DELETE", f"/v1/webhook-endpoints/{endpoint['id']}")
    assert removed["id"] == endpoint["id"]
    gone = await operator.client.get(f"/v1/webhook-endpoints/{endpoint['id']}")
    assert gone.status_code == 404 and gone.json()["endpoint_id"] == endpoint["id"]
    assert (await operator.ok("GET", "/v1/webhook-deliveries"))["data"] == []


async def _status_is(log: Callable[[], Any], status: str) -> bool:
    return bool((await log()).get("status") == status)


async def test_malformed_endpoints_are_422(served: Stack) -> None:
    for body, loc in [
        ({"url": "ftp://example.com/hooks"}, "url"),
        ({"url": "https://example.com", "event_types": ["Session"]}, "body.event_types.0"),
        ({"url": "https://example.com", "event_types": []}, "body.event_types"),
        ({"url": "https://example.com", "secret": "whsec_x"}, "body.secret"),
    ]:
        answer = await served.operator.client.post("/v1/webhook-endpoints", json=body)
        assert answer.status_code == 422, answer.text
        assert [e["loc"] for e in answer.json()["errors"]] == [loc]
    assert await served.operator.ok("GET", "/v1/webhook-endpoints") == []
