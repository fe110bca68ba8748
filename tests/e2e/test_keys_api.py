"""API keys over HTTP: what a key may mint, and rotation.

Story: an operator gives a customer an `admin` key that may call one model, 10 times a
minute, for an hour. With it the customer issues keys for its own services: each new key
gets at most what the admin key has, and omitted bounds are inherited, so even the defaults
never exceed it; a wider key is refused with 403 `key-exceeds-issuer` naming the fields.
Later a key leaks: its owner rotates it. The successor is shown once, the old key works on
for the grace period (or stops at once, in every process's cache), and a key is rotated once.
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


async def rotate(stack: Stack, key: str, key_id: str, **body: Any) -> httpx.Response:
    return await call(stack, key, "POST", f"/v1/keys/{key_id}/rotate", json=body or None)


async def first_key_id(stack: Stack, customer_id: str) -> str:
    return (await key_ids(stack, customer_id))[0]


class TestRotation:
    async def test_successor_is_shown_once_and_the_old_key_works_for_24_hours(
        self, stack: Stack
    ) -> None:
        customer_id, old_key = await stack.customer()
        old_id = await first_key_id(stack, customer_id)

        response = await rotate(stack, stack.operator_key, old_id)

        assert response.status_code == 201, response.text
        rotated = response.json()
        assert rotated["key"].startswith("th_live_") and rotated["key"] != old_key
        assert rotated["id"] != old_id
        assert (rotated["previous_key_id"], rotated["customer_id"]) == (old_id, customer_id)
        grace = moment(rotated["previous_key_expires_at"]) - moment(rotated["created_at"])
        assert grace == timedelta(hours=24)
        old = await stack.operator.ok("GET", f"/v1/keys/{old_id}")
        assert old["successor_id"] == rotated["id"]
        assert old["expires_at"] == rotated["previous_key_expires_at"]
        for key in (old_key, rotated["key"]):
            assert (await call(stack, key, "GET", "/v1/customers/me")).status_code == 200

    async def test_successor_keeps_the_old_keys_settings(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer()
        admin = await restricted_admin(stack, customer_id)

        response = await rotate(stack, stack.operator_key, admin["id"])

        rotated = response.json()
        for field in ("name", "scopes", "allowed_models", "rate_limit_rpm", "expires_at"):
            assert rotated[field] == admin[field], field

    async def test_zero_grace_stops_the_old_key_at_once_even_while_cached(
        self, stack: Stack
    ) -> None:
        customer_id, old_key = await stack.customer()
        old_id = await first_key_id(stack, customer_id)
        assert (await call(stack, old_key, "GET", "/v1/customers/me")).status_code == 200

        rotated = (await rotate(stack, stack.operator_key, old_id, grace_seconds=0)).json()

        assert (await call(stack, old_key, "GET", "/v1/customers/me")).status_code == 401
        assert (await call(stack, rotated["key"], "GET", "/v1/customers/me")).status_code == 200

    async def test_rotating_a_rotated_or_revoked_key_is_409(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer()
        rotated_id = await first_key_id(stack, customer_id)
        await rotate(stack, stack.operator_key, rotated_id)
        revoked = await stack.operator.ok("POST", f"/v1/customers/{customer_id}/keys", json={})
        await stack.operator.ok("DELETE", f"/v1/keys/{revoked['id']}")

        for key_id, state in ((rotated_id, "rotated"), (revoked["id"], "revoked")):
            response = await rotate(stack, stack.operator_key, key_id)
            assert response.status_code == 409, response.text
            assert response.headers["content-type"] == PROBLEM_JSON
            assert response.json()["type"].endswith("/key-not-rotatable")
            assert response.json()["state"] == state
        assert len(await key_ids(stack, customer_id)) == 3

    async def test_customer_key_rotates_its_own_customers_keys_only(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer()
        other_id, _ = await stack.customer()
        admin = await stack.operator.ok(
            "POST", f"/v1/customers/{customer_id}/keys", json={"scopes": ["admin"]}
        )
        own_id = await first_key_id(stack, customer_id)
        others_id = await first_key_id(stack, other_id)

        own = await rotate(stack, admin["key"], own_id)
        others = await rotate(stack, admin["key"], others_id)

        assert own.status_code == 201, own.text
        assert others.status_code == 404
        assert (await stack.operator.ok("GET", f"/v1/keys/{others_id}"))["successor_id"] is None

    async def test_the_mint_rule_applies_to_the_rotating_key(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer()
        unrestricted_id = await first_key_id(stack, customer_id)
        admin = await restricted_admin(stack, customer_id)

        response = await rotate(stack, admin["key"], unrestricted_id)

        assert response.status_code == 403
        assert response.json()["type"].endswith("/key-exceeds-issuer")
        assert response.json()["fields"] == ["allowed_models", "expires_at", "rate_limit_rpm"]

    async def test_rotation_needs_the_admin_scope(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()

        response = await rotate(stack, key, await first_key_id(stack, customer_id))

        assert response.status_code == 403
        assert response.json()["type"].endswith("/insufficient-scope")

    async def test_grace_outside_zero_to_thirty_days_is_422(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer()
        key_id = await first_key_id(stack, customer_id)

        for grace_seconds in (-1, 30 * 86_400 + 1, "soon", "60", True, 1.5):
            response = await rotate(stack, stack.operator_key, key_id, grace_seconds=grace_seconds)
            assert response.status_code == 422, (grace_seconds, response.text)
        assert (await stack.operator.ok("GET", f"/v1/keys/{key_id}"))["successor_id"] is None
