"""Every route that takes an id, called by one tenant with another tenant's real id: 404,
and nothing of the other tenant changes.

The story: a served tollhouse (frozen clock, Stripe on the local fake) has two customers on
the pro plan, A and B, each with an `admin` key and one of everything a path can name
(`tests.support.tenants`: a key, a grant, a hold, a session, an invoice, a payment, a
checkout); the operator owns a webhook endpoint and a delivery. The test reads the served OpenAPI document and, for every
operation whose path has a `{...}` parameter, calls it with A's key and B's ids, with a valid
body where the operation takes one. The answer must be 404 problem+json, the same answer as
for an id that exists nowhere (no existence oracle), and B's state read by the operator
(customer, wallet, history, keys, subscription, alerts, top-up, hold, session, invoice,
payment, checkout) must be what it was before the call.

Operations only an operator may call answer 403 (`required: operator`) to every customer key,
whatever the id: they are listed in `OPERATOR_ONLY`. A route added later with an id parameter
is called without anyone listing it; it fails here until its parameter has an id in
`ids_of_b` and, if it takes a body, `BODIES` has one.

Ids also travel in queries and bodies (`GET /v1/invoices?customer_id=`, `POST /v1/refunds`
with a `hold_id`): every query parameter and JSON body field named `*_id` is given B's id the
same way, with the rest of the body from `BASE_BODIES`; names that are not ids of an object
(`before_id`, a cursor) are listed in `NOT_OBJECT_IDS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.conftest import Stack, running_stack
from tests.support.server import Api
from tests.support.stripe import API_KEY, WEBHOOK_SECRET, FakeStripe
from tests.support.tenants import SCOPES, populated_tenant
from tests.support.upstream import FakeUpstream

from tollhouse.clock import FrozenClock
from tollhouse.ids import new_id

PROBLEM = "application/problem+json"
METHODS = ("get", "post", "put", "patch", "delete")

BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("PATCH", "/v1/customers/{customer_id}"): {"country": "FR"},
    ("POST", "/v1/customers/{customer_id}/keys"): {"name": "stolen", "scopes": SCOPES},
    ("POST", "/v1/keys/{key_id}/rotate"): {},
    ("POST", "/v1/customers/{customer_id}/credits/grants"): {
        "amount_micros": 1_000_000,
        "idempotency_key": "cross-tenant",
    },
    ("PUT", "/v1/customers/{customer_id}/overdraft"): {"limit_micros": 1_000_000},
    ("PUT", "/v1/customers/{customer_id}/credit-alerts"): {"threshold_micros": 5_000_000},
    ("POST", "/v1/holds/{hold_id}/capture"): {"amount_micros": 1},
    ("PUT", "/v1/customers/{customer_id}/subscription"): {"plan": "free"},
    ("PUT", "/v1/customers/{customer_id}/subscription/payment-method"): {
        "has_payment_method": True
    },
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"): {"enabled": False},
    ("POST", "/v1/invoices/{invoice_id}/pay"): {"payment_reference": "cross-tenant"},
    ("POST", "/v1/payments/{payment_id}/refund"): {"idempotency_key": "cross-tenant"},
    ("PUT", "/v1/customers/{customer_id}/auto-top-up"): {
        "enabled": True,
        "threshold_micros": 1_000_000,
        "pack": "pack-10",
    },
}
"""A valid body for each id-taking operation that takes one, keyed by (method, path)."""

OPERATOR_ONLY = {
    ("PATCH", "/v1/customers/{customer_id}"),
    ("POST", "/v1/customers/{customer_id}/credits/grants"),
    ("PUT", "/v1/customers/{customer_id}/overdraft"),
    ("DELETE", "/v1/grants/{grant_id}"),
    ("PUT", "/v1/customers/{customer_id}/subscription"),
    ("PUT", "/v1/customers/{customer_id}/subscription/payment-method"),
    ("POST", "/v1/invoices/{invoice_id}/pay"),
    ("POST", "/v1/invoices/{invoice_id}/void"),
    ("POST", "/v1/invoices/{invoice_id}/mark-uncollectible"),
    ("POST", "/v1/payments/{payment_id}/refund"),
    ("GET", "/v1/webhook-endpoints/{endpoint_id}"),
    ("PATCH", "/v1/webhook-endpoints/{endpoint_id}"),
    ("DELETE", "/v1/webhook-endpoints/{endpoint_id}"),
    ("GET", "/v1/webhook-deliveries/{delivery_id}"),
    ("POST", "/v1/webhook-deliveries/{delivery_id}/retry"),
}
"""Operations that answer 403 (`required: operator`) to every customer key, whatever the id:
the operator's own objects (webhooks), and the operator's acts on a customer (grants,
overdraft, plan changes, invoice and payment settlement)."""


BASE_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/authorize"): {"model": "test-chat", "usage": {"input_tokens": 10}},
    ("POST", "/v1/sessions"): {"product": "analysis", "idempotency_key": "cross-tenant"},
    ("POST", "/v1/sessions/estimate"): {"resource_tier": "small", "duration_seconds": 60},
    ("POST", "/v1/sessions/quota/add"): {
        "product": "analysis",
        "sessions": 5,
        "idempotency_key": "cross-tenant",
    },
    ("POST", "/v1/subscription/change"): {"plan": "free"},
    ("POST", "/v1/subscription/cancel"): {},
    ("POST", "/v1/refunds"): {"idempotency_key": "cross-tenant"},
    ("POST", "/v1/payments"): {"pack": "pack-10", "idempotency_key": "cross-tenant"},
    ("POST", "/v1/checkout"): {"credit_pack": "pack-10", "idempotency_key": "cross-tenant"},
}
"""The rest of a valid body of each operation with an id in its body or query, keyed by
(method, path)."""

NOT_OBJECT_IDS = {"before_id", "external_id", "event_id"}
"""Fields named `*_id` that name no tenant object to probe: a page cursor (an entry id), the
operator's own reference for a customer, and an event id (events are read through
`/v1/events`, filtered to the caller's)."""

OPERATOR_ONLY_FIELDS = {
    ("POST", "/v1/refunds", "hold_id"),
    ("POST", "/v1/payments", "customer_id"),
    ("GET", "/v1/webhook-deliveries", "endpoint_id"),
}
"""Operations (and the id field) that answer 403 to every customer key."""

FILTERS = {("GET", "/v1/usage", "key_id")}
"""Fields that filter the caller's own data: another tenant's id matches nothing, so the
answer is 200 and exactly the answer for an id that exists nowhere."""


@dataclass
class Tenants:
    stack: Stack
    key_a: str
    ids_of_b: dict[str, str]
    """Path parameter name -> the id of B's object (the operator's for operator-only ones)."""


async def _delivery(stack: Stack, endpoint_id: str) -> str:
    """The id of the endpoint's first delivery (written once the dispatcher sees an event)."""
    for _ in range(200):
        page = await stack.operator.ok(
            "GET", "/v1/webhook-deliveries", params={"endpoint_id": endpoint_id}
        )
        if page["data"]:
            return str(page["data"][0]["id"])
        await asyncio.sleep(0.05)
    raise AssertionError("no webhook delivery was written within 10 s")


@pytest.fixture
async def tenants(tmp_path: Path, upstream: FakeUpstream) -> AsyncIterator[Tenants]:
    stripe = FakeStripe()
    await stripe.start()
    clock = FrozenClock(datetime(2026, 3, 15, 12, 0, tzinfo=UTC))
    settings: dict[str, Any] = {
        "stripe_api_key": API_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": stripe.base_url,
        "checkout_success_url": "https://app.example/paid",
    }
    try:
        async with running_stack(tmp_path, upstream, clock=clock, **settings) as stack:
            operator = stack.operator
            endpoint = await operator.ok(
                "POST", "/v1/webhook-endpoints", json={"url": "http://127.0.0.1:9/hook"}
            )
            a = await populated_tenant(stack, "a")
            b = await populated_tenant(stack, "b")
            ids = {
                **b.ids,
                "endpoint_id": endpoint["id"],
                "delivery_id": await _delivery(stack, endpoint["id"]),
            }
            yield Tenants(stack, a.key, ids)
    finally:
        await stripe.stop()


async def _state_of_b(tenants: Tenants) -> dict[str, Any]:
    """Everything of B's the operator reads, by URL (and the operator's endpoint)."""
    ids, b = tenants.ids_of_b, tenants.ids_of_b["customer_id"]
    urls = [
        f"/v1/customers/{b}",
        f"/v1/customers/{b}/balance",
        f"/v1/customers/{b}/transactions",
        f"/v1/customers/{b}/keys",
        f"/v1/customers/{b}/subscription",
        f"/v1/customers/{b}/credit-alerts",
        f"/v1/customers/{b}/auto-top-up",
        f"/v1/keys/{ids['key_id']}",
        f"/v1/holds/{ids['hold_id']}",
        f"/v1/sessions/{ids['session_id']}",
        f"/v1/invoices/{ids['invoice_id']}",
        f"/v1/payments/{ids['payment_id']}",
        f"/v1/checkout/{ids['checkout_id']}",
        f"/v1/webhook-endpoints/{ids['endpoint_id']}",
        f"/v1/sessions?customer_id={b}",
        f"/v1/invoices?customer_id={b}",
    ]
    await tenants.stack.runtime.drain()
    await tenants.stack.runtime.authenticator.flush_last_used()  # B's own calls, written late
    read = [tenants.stack.operator.ok("GET", url) for url in urls]
    return dict(zip(urls, await asyncio.gather(*read), strict=True))


def _id_operations(document: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """(METHOD, path, path parameter names) of every operation with a path parameter."""
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "path"]
            if names:
                found.append((method.upper(), path, names))
    return found


def _unknown(real: str) -> str:
    """An id of the same kind as `real` that names nothing."""
    prefix, _, _ = real.rpartition("_")
    return new_id(prefix) if prefix else real[::-1]


async def test_another_tenants_ids_answer_404_and_change_nothing(tenants: Tenants) -> None:
    stack = tenants.stack
    document = (await stack.operator.client.get("/openapi.json")).json()
    operations = _id_operations(document)
    assert len(operations) >= 40, "the document lists fewer id routes than it did"
    failures: list[str] = []
    before = await _state_of_b(tenants)
    async with Api(stack.base_url, tenants.key_a) as as_a:
        for method, path, names in operations:
            name = f"{method} {path}"
            missing = [n for n in names if n not in tenants.ids_of_b]
            if missing:
                failures.append(f"{name}: no object of B's for {missing} (add it to the fixture)")
                continue
            operation = document["paths"][path][method.lower()]
            body = BODIES.get((method, path))
            if "requestBody" in operation and body is None:
                failures.append(f"{name}: takes a body and BODIES has none")
                continue
            real = path.format(**tenants.ids_of_b)
            unknown = path.format(**{n: _unknown(tenants.ids_of_b[n]) for n in names})
            theirs = await as_a.client.request(method, real, json=body)
            nobodys = await as_a.client.request(method, unknown, json=body)
            after = await _state_of_b(tenants)
            expected = 403 if (method, path) in OPERATOR_ONLY else 404
            if theirs.status_code != expected:
                failures.append(f"{name}: {theirs.status_code} {theirs.text[:200]}")
            elif theirs.headers["content-type"] != PROBLEM:
                failures.append(f"{name}: {theirs.headers['content-type']}, not problem+json")
            elif (nobodys.status_code, nobodys.json().get("type")) != (
                expected,
                theirs.json().get("type"),
            ):
                failures.append(f"{name}: an unknown id answers {nobodys.status_code}")
            if after != before:
                changed = {
                    url: (before[url], after[url]) for url in before if before[url] != after[url]
                }
                failures.append(f"{name}: changed B's {changed}")
                before = after
    assert not failures, "\n".join(failures)
    assert set(OPERATOR_ONLY) <= {(m, p) for m, p, _ in operations}, "OPERATOR_ONLY is stale"
    assert set(BODIES) <= {(m, p) for m, p, _ in operations}, "BODIES is stale"


def _id_fields(document: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(METHOD, path, "query" or "body", name) of every `*_id` query parameter and JSON
    body field of an operation without path parameters."""
    schemas = document["components"]["schemas"]
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method not in METHODS or "{" in path:
                continue
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "query" and parameter["name"].endswith("_id"):
                    found.append((method.upper(), path, "query", parameter["name"]))
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is not None:
                ref = body["schema"].get("$ref", "").rsplit("/", 1)[-1]
                fields = schemas.get(ref, body["schema"]).get("properties", {})
                found += [(method.upper(), path, "body", n) for n in fields if n.endswith("_id")]
    return found


async def test_another_tenants_ids_in_queries_and_bodies_answer_404(tenants: Tenants) -> None:
    stack = tenants.stack
    document = (await stack.operator.client.get("/openapi.json")).json()
    fields = [f for f in _id_fields(document) if f[3] not in NOT_OBJECT_IDS]
    assert len(fields) >= 20, "the document lists fewer id fields than it did"
    failures: list[str] = []
    before = await _state_of_b(tenants)
    async with Api(stack.base_url, tenants.key_a) as as_a:
        for method, path, where, field in fields:
            name = f"{method} {path} ({where} {field})"
            if field not in tenants.ids_of_b:
                failures.append(f"{name}: no object of B's for it (add it to the fixture)")
                continue
            operation = document["paths"][path][method.lower()]
            base = BASE_BODIES.get((method, path))
            if "requestBody" in operation and base is None:
                failures.append(f"{name}: takes a body and BASE_BODIES has none")
                continue
            answers = []
            for value in (tenants.ids_of_b[field], _unknown(tenants.ids_of_b[field])):
                body = {**base, field: value} if where == "body" and base is not None else base
                params = {field: value} if where == "query" else None
                answers.append(await as_a.client.request(method, path, params=params, json=body))
            theirs, nobodys = answers
            after = await _state_of_b(tenants)
            expected = 403 if (method, path, field) in OPERATOR_ONLY_FIELDS else 404
            if (method, path, field) in FILTERS:
                if (theirs.status_code, theirs.json()) != (200, nobodys.json()):
                    failures.append(f"{name}: {theirs.status_code}, not an unknown id's answer")
            elif theirs.status_code != expected:
                failures.append(f"{name}: {theirs.status_code} {theirs.text[:200]}")
            elif (nobodys.status_code, nobodys.json().get("type")) != (
                expected,
                theirs.json().get("type"),
            ):
                failures.append(f"{name}: an unknown id answers {nobodys.status_code}")
            if after != before:
                changed = [url for url in before if before[url] != after[url]]
                failures.append(f"{name}: changed B's {changed}")
                before = after
    assert not failures, "\n".join(failures)
