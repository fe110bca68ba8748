"""Two processes on one database with different catalogs: the second cannot set plans the
first (the one `serve` recorded, the catalog in force) does not have.

Story: the stack was started (bootstrapped) with the test catalog, which has no `basic` plan.
A second app runs on the same SQLite file with the built-in catalog, which does. Through it,
creating a customer on `basic`, moving one there (operator PUT, or the change route), or
issuing a key for a model the served catalog lacks is answered 409 `not-in-catalog-in-force`
naming both catalogs, and nothing is written. The served app itself still sets the plans it
has.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from tests.e2e.conftest import Stack
from tests.support.server import Api, serve

from tollhouse.catalog import builtin_catalog
from tollhouse.config import Settings
from tollhouse.server.runtime import Runtime

PROBLEM_TYPE = "https://tollhouse.dev/problems/not-in-catalog-in-force"


@pytest.fixture
async def builtin_app(stack: Stack) -> AsyncIterator[Api]:
    """An operator client of a second app on the stack's database, with the built-in catalog."""
    settings = Settings(
        database_url=stack.runtime.settings.database_url,
        catalog=None,
        _env_file=None,  # type: ignore[call-arg]
    )
    async with serve(Runtime(settings)) as served:
        assert served.runtime.catalog is builtin_catalog()
        async with Api(served.base_url, stack.operator_key) as api:
            yield api


def assert_refused(response: httpx.Response, stack: Stack) -> None:
    assert response.status_code == 409, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == PROBLEM_TYPE
    assert problem["status"] == 409
    assert "plan 'basic' is not in the catalog in force" in problem["detail"]
    assert problem["catalog"]["source"] == "built-in"
    assert problem["catalog_in_force"] == stack.runtime.catalog.describe()
    assert problem["missing"]["plans"] == ["basic"]


async def test_customer_creation_on_a_plan_missing_from_the_catalog_in_force_is_409(
    stack: Stack, builtin_app: Api
) -> None:
    before = await stack.operator.ok("GET", "/v1/customers")

    response = await builtin_app.client.post("/v1/customers", json={"name": "Ada", "plan": "basic"})

    assert_refused(response, stack)
    assert await stack.operator.ok("GET", "/v1/customers") == before


async def test_moving_a_customer_to_a_plan_missing_from_the_catalog_in_force_is_409(
    stack: Stack, builtin_app: Api
) -> None:
    customer_id, _ = await stack.customer()

    put = await builtin_app.client.put(
        f"/v1/customers/{customer_id}/subscription", json={"plan": "basic"}
    )
    change = await builtin_app.client.post(
        "/v1/subscription/change", params={"customer_id": customer_id}, json={"plan": "basic"}
    )

    assert_refused(put, stack)
    assert_refused(change, stack)
    subscription = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/subscription")
    assert (subscription["plan"], subscription["scheduled_plan"]) == ("free", None)


async def test_the_served_app_still_sets_the_plans_it_has(stack: Stack, builtin_app: Api) -> None:
    customer = await stack.operator.ok("POST", "/v1/customers", json={"name": "Ada", "plan": "pro"})

    assert customer["plan"] == "pro"


async def test_a_key_for_a_model_missing_from_the_catalog_in_force_is_409(
    stack: Stack, builtin_app: Api
) -> None:
    """`gpt-4o-mini` is in the built-in catalog, not in the served one."""
    customer_id, _ = await stack.customer()
    before = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/keys")

    response = await builtin_app.client.post(
        f"/v1/customers/{customer_id}/keys", json={"name": "k", "allowed_models": ["gpt-4o-mini"]}
    )

    assert response.status_code == 409, response.text
    problem = response.json()
    assert problem["type"] == PROBLEM_TYPE
    assert problem["missing"]["models"] == ["gpt-4o-mini"]
    assert await stack.operator.ok("GET", f"/v1/customers/{customer_id}/keys") == before
