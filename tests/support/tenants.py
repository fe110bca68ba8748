"""Tenants for multi-tenant tests: a customer that owns one of everything a path can name.

`populated_tenant(stack)` creates a pro customer with $10, an `admin` key to call with, and
a key, a grant, a hold, a flat session, an invoice, a payment and a Stripe checkout (the stack
must be configured with Stripe), and answers their ids by the path parameter that names them
(`customer_id`, `key_id`, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.e2e.conftest import Stack
from tests.support.server import Api

SCOPES = ["read", "write", "admin"]
"""Every scope: a tenant's calls are never refused for want of one."""


@dataclass(frozen=True)
class Tenant:
    customer_id: str
    key: str
    """An `admin` key of the customer's (secret), to call with."""
    ids: dict[str, str]
    """Path parameter name -> the id of one of the customer's objects. `key_id` names a key
    other than `key`, so revoking or rotating it leaves `key` working."""


async def populated_tenant(stack: Stack, name: str) -> Tenant:
    """A pro customer named `name` with one object of each kind (see the module docstring)."""
    operator = stack.operator
    customer_id, _ = await stack.customer(plan="pro", credits_micros=10_000_000)
    key = await operator.ok(
        "POST", f"/v1/customers/{customer_id}/keys", json={"name": name, "scopes": SCOPES}
    )
    listed = await operator.ok("GET", f"/v1/customers/{customer_id}/keys")
    (spare_id,) = [k["id"] for k in listed if k["id"] != key["id"]]  # the stack's first key
    grant = await operator.ok(
        "POST", f"/v1/customers/{customer_id}/credits/grants",
        json={"amount_micros": 2_000_000, "idempotency_key": f"{name}-grant"},
    )  # fmt: skip
    await operator.ok("POST", "/v1/billing/close")
    invoices = await operator.ok("GET", "/v1/invoices", params={"customer_id": customer_id})
    payment = await operator.ok(
        "POST", "/v1/payments",
        json={"customer_id": customer_id, "pack": "pack-10", "idempotency_key": f"{name}-wire"},
    )  # fmt: skip
    await operator.ok(
        "PUT", f"/v1/customers/{customer_id}/credit-alerts", json={"threshold_micros": 1_000_000}
    )
    async with Api(stack.base_url, key["key"]) as own:
        decision = await own.ok(
            "POST", "/v1/authorize", json={"model": "test-chat", "usage": {"input_tokens": 1000}}
        )
        session = await own.ok(
            "POST", "/v1/sessions", json={"product": "analysis", "idempotency_key": f"{name}-s"}
        )
        checkout = await own.ok(
            "POST", "/v1/checkout", json={"credit_pack": "pack-10", "idempotency_key": name}
        )
    ids = {
        "customer_id": customer_id,
        "key_id": spare_id,
        "grant_id": grant["id"],
        "hold_id": decision["hold"]["id"],
        "session_id": session["id"],
        "invoice_id": invoices[0]["id"],
        "payment_id": payment["id"],
        "checkout_id": checkout["id"],
    }
    return Tenant(customer_id, key["key"], ids)
