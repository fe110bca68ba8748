"""API keys over HTTP: what a key may mint.

Story: an operator gives a customer an `admin` key that may call one model, 10 times a
minute, for an hour. With it the customer issues keys for its own services: each new key
gets at most what the admin key has, and omitted bounds are inherited, so even the defaults
never exceed it; a wider key is refused with 403 `key-exceeds-issuer` naming the fields.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
from tests.e2e.conftest import Stack
from tests.support.server import Api

PROBLEM_JSON = "application/problem+json"
ADMIN_RPM = 10
ADMIN_MODEL = "test-chat"


async def call(stack: Stack, key: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """Call with `key` without asserting success, to check error answers."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        return await http.request(method, url, headers={"Authorization": f"Bearer {key}"}, **kwargs)


def moment(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def restricted_admin(stack: Stack, customer_id: str) -> dict[str, Any]:
    """The customer's `read,admin` key: one model, 10 rpm, one hour of life."""
    expires_at = datetime.now().astimezone() + timedelta(hours=1)
    return dict(
        await stack.operator.ok(
            "POST",
            f"/v1/customers/{customer_id}/keys",
            json={
                "name": "admin",
                "scopes": ["read", "admin"],
                "allowed_models": [ADMIN_MODEL],
                "rate_limit_rpm": ADMIN_RPM,
                "expires_at": expires_at.isoformat(),
            },
        )
    )


async def key_ids(stack: Stack, customer_id: str) -> list[str]:
    return [k["id"] for k in await stack.operator.ok("GET", f"/v1/customers/{customer_id}/keys")]


class TestMintingBounds:
    async def test_omitted_bounds_are_inherited_from_the_minting_key(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer()
        admin = await restricted_admin(stack, customer_id)

        async with Api(stack.base_url, admin["key"]) as own:
            minted = await own.ok(
                "POST", "/v1/customers/me/keys", json={"scopes": ["read", "write"]}
            )

        assert minted["scopes"] == ["read", "write"]
        assert minted["allowed_models"] == [ADMIN_MODEL]
        assert minted["rate_limit_rpm"] == ADMIN_RPM
        assert minted["expires_at"] == admin["expires_at"]

    async def test_narrower_key_is_issued_as_asked(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer()
        admin = await restricted_admin(stack, customer_id)
        sooner = moment(admin["expires_at"]) - timedelta(minutes=30)

        async with Api(stack.base_url, admin["key"]) as own:
            minted = await own.ok(
                "POST",
                f"/v1/customers/{customer_id}/keys",
                json={
                    "scopes": ["read"],
                    "allowed_models": [],
                    "rate_limit_rpm": ADMIN_RPM - 1,
                    "expires_at": sooner.isoformat(),
                },
            )

        assert (minted["scopes"], minted["allowed_models"]) == (["read"], [])
        assert minted["rate_limit_rpm"] == ADMIN_RPM - 1
        assert moment(minted["expires_at"]) == sooner

    async def test_key_wider_than_the_minting_key_is_403_naming_each_field(
        self, stack: Stack
    ) -> None:
        customer_id, _ = await stack.customer()
        admin = await restricted_admin(stack, customer_id)
        before = await key_ids(stack, customer_id)
        later = moment(admin["expires_at"]) + timedelta(days=1)
        wider = [
            ({"allowed_models": ["test-image"]}, ["allowed_models"]),
            ({"allowed_models": [ADMIN_MODEL, "test-image"]}, ["allowed_models"]),
            ({"rate_limit_rpm": ADMIN_RPM + 1}, ["rate_limit_rpm"]),
            ({"expires_at": later.isoformat()}, ["expires_at"]),
            (
                {"allowed_models": ["test-image"], "rate_limit_rpm": 1000},
                ["allowed_models", "rate_limit_rpm"],
            ),
        ]

        for body, fields in wider:
            response = await call(
                stack, admin["key"], "POST", f"/v1/customers/{customer_id}/keys", json=body
            )
            assert response.status_code == 403, (body, response.text)
            assert response.headers["content-type"] == PROBLEM_JSON
            problem = response.json()
            assert problem["type"].endswith("/key-exceeds-issuer"), problem
            assert problem["fields"] == fields
        assert await key_ids(stack, customer_id) == before

    async def test_operator_key_mints_unbounded_keys(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer()

        minted = await stack.operator.ok(
            "POST", f"/v1/customers/{customer_id}/keys", json={"scopes": ["admin"]}
        )

        assert minted["scopes"] == ["admin"]
        assert (minted["allowed_models"], minted["rate_limit_rpm"]) == (None, None)
        assert minted["expires_at"] is None
