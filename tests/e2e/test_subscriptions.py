"""Plans, subscriptions, quotas and entitlements over HTTP.

Story: a new customer is on the free plan at once; it reads its subscription, its quota usage
and the plans; the operator upgrades it and the gateway lets it use the better model at once;
a customer on a capped plan is stopped by its quota exactly at the cap, before the upstream;
the sidecar refuses features and resource tiers the plan lacks, naming the plan that has
them; nobody reads another customer's subscription.
"""

from __future__ import annotations

from datetime import datetime

import httpx
import openai
import pytest
from tests.e2e.conftest import Stack
from tests.support.catalog import CAPPED_API_CALLS
from tests.support.server import Api

MESSAGES = [{"role": "user", "content": "Say hello"}]


def client(stack: Stack, key: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=key, base_url=stack.base_url + "/v1", max_retries=0)


async def admin_key(stack: Stack, customer_id: str) -> str:
    issued = await stack.operator.ok(
        "POST", f"/v1/customers/{customer_id}/keys", json={"scopes": ["admin"]}
    )
    return str(issued["key"])


class TestSubscription:
    async def test_new_customer_is_on_free_at_once(self, stack: Stack) -> None:
        _, key = await stack.customer()
        async with Api(stack.base_url, key) as own:
            subscription = await own.ok("GET", "/v1/subscription/me")
        assert subscription["plan"] == "free"
        assert subscription["status"] == "active"
        start = datetime.fromisoformat(subscription["current_period_start"])
        end = datetime.fromisoformat(subscription["current_period_end"])
        assert 27 <= (end - start).days <= 31

    async def test_plans_are_listed_with_their_quotas(self, stack: Stack) -> None:
        plans = await stack.operator.ok("GET", "/v1/plans")
        by_name = {p["name"]: p for p in plans}
        assert [p["name"] for p in plans] == ["free", "capped", "concurrent", "pro", "lifetime"]
        assert by_name["capped"]["quotas"] == {"api_calls": CAPPED_API_CALLS}
        assert by_name["lifetime"]["rate_limit_multiplier"] is None

    async def test_usage_shows_used_limit_remaining_and_reset(self, stack: Stack) -> None:
        _, key = await stack.customer(plan="capped")
        await client(stack, key).chat.completions.create(model="test-chat", messages=MESSAGES)
        await stack.runtime.drain()
        async with Api(stack.base_url, key) as own:
            usage = {q["meter"]: q for q in await own.ok("GET", "/v1/subscription/usage")}
            subscription = await own.ok("GET", "/v1/subscription/me")
        calls = usage["api_calls"]
        assert (calls["used"], calls["limit"], calls["remaining"]) == (
            1,
            CAPPED_API_CALLS,
            CAPPED_API_CALLS - 1,
        )
        assert calls["resets_at"] == subscription["current_period_end"]

    async def test_operator_upgrade_applies_at_once_in_the_gateway(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        with pytest.raises(openai.PermissionDeniedError):
            await client(stack, key).chat.completions.create(
                model="test-chat-pro", messages=MESSAGES
            )
        change = await stack.operator.ok(
            "PUT", f"/v1/customers/{customer_id}/subscription", json={"plan": "pro"}
        )
        assert (change["kind"], change["to_plan"]) == ("upgraded", "pro")
        completion = await client(stack, key).chat.completions.create(
            model="test-chat-pro", messages=MESSAGES
        )
        assert completion.choices
        history = await stack.operator.ok(
            "GET", "/v1/subscription/history", params={"customer_id": customer_id}
        )
        assert "upgraded" in [row["event"] for row in history]

    async def test_customer_admin_schedules_a_downgrade_and_resumes(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer(plan="pro")
        async with Api(stack.base_url, await admin_key(stack, customer_id)) as admin:
            change = await admin.ok("POST", "/v1/subscription/change", json={"plan": "free"})
            assert change["kind"] == "downgrade_scheduled"
            assert change["subscription"]["plan"] == "pro"
            assert change["subscription"]["scheduled_plan"] == "free"
            resumed = await admin.ok("POST", "/v1/subscription/resume")
            assert resumed["scheduled_plan"] is None
            canceled = await admin.ok(
                "POST", "/v1/subscription/cancel", json={"at_period_end": True}
            )
            assert canceled["cancel_at_period_end"] is True

    async def test_read_write_key_cannot_change_the_plan(self, stack: Stack) -> None:
        _, key = await stack.customer()
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            response = await http.post(
                "/v1/subscription/change",
                json={"plan": "pro"},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert response.status_code == 403

    async def test_another_customers_subscription_is_404(self, stack: Stack) -> None:
        other_id, _ = await stack.customer()
        _, key = await stack.customer()
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            for url in (f"/v1/customers/{other_id}/subscription", "/v1/subscription/usage"):
                response = await http.get(
                    url,
                    params={"customer_id": other_id},
                    headers={"Authorization": f"Bearer {key}"},
                )
                assert response.status_code == 404, url


class TestQuota:
    async def test_the_call_past_the_cap_is_429_and_the_one_before_is_not(
        self, stack: Stack
    ) -> None:
        _, key = await stack.customer(plan="capped")
        api = client(stack, key)
        for _ in range(CAPPED_API_CALLS):
            await api.chat.completions.create(model="test-chat", messages=MESSAGES)
        with pytest.raises(openai.RateLimitError) as caught:
            await api.chat.completions.create(model="test-chat", messages=MESSAGES)
        body = caught.value.body
        assert isinstance(body, dict)
        assert body["code"] == "quota-exceeded"
        assert int(caught.value.response.headers["Retry-After"]) >= 1
        assert len(stack.upstream.requests) == CAPPED_API_CALLS

    async def test_quota_reached_is_one_event_per_period_however_many_refusals(
        self, stack: Stack
    ) -> None:
        customer_id, key = await stack.customer(plan="capped")
        api = client(stack, key)
        for _ in range(CAPPED_API_CALLS):
            await api.chat.completions.create(model="test-chat", messages=MESSAGES)
        await stack.runtime.drain()
        for _ in range(3):
            with pytest.raises(openai.RateLimitError):
                await api.chat.completions.create(model="test-chat", messages=MESSAGES)
        stack.runtime.quotas.invalidate(customer_id)  # as another process would see it
        with pytest.raises(openai.RateLimitError):
            await api.chat.completions.create(model="test-chat", messages=MESSAGES)
        await stack.runtime.drain()
        stack.runtime.quotas._reached.clear()  # a restarted process: the table guards it
        with pytest.raises(openai.RateLimitError):
            await api.chat.completions.create(model="test-chat", messages=MESSAGES)
        await stack.runtime.drain()
        page = await stack.operator.ok(
            "GET", "/v1/events", params={"customer_id": customer_id, "type": "quota.reached"}
        )
        reached = [e for e in page["data"] if e["type"] == "quota.reached"]
        assert len(reached) == 1
        data = reached[0]["data"]
        assert data["meter"] == "api_calls"
        assert data["limit"] == data["used"] == CAPPED_API_CALLS
        assert data["refused"] is False  # the last call allowed reached the cap
        assert datetime.fromisoformat(data["resets_at"]) > datetime.fromisoformat(
            reached[0]["created_at"]
        )

    async def test_concurrent_calls_cannot_pass_the_cap_together(self, stack: Stack) -> None:
        import asyncio

        _, key = await stack.customer(plan="capped")
        api = client(stack, key)

        async def call() -> bool:
            try:
                await api.chat.completions.create(model="test-chat", messages=MESSAGES)
            except openai.RateLimitError:
                return False
            return True

        results = await asyncio.gather(*(call() for _ in range(CAPPED_API_CALLS + 2)))
        assert sum(results) == CAPPED_API_CALLS

    async def test_sidecar_authorize_is_refused_past_the_cap(self, stack: Stack) -> None:
        _customer_id, key = await stack.customer(plan="capped")
        async with Api(stack.base_url, key) as app:
            # api_calls is a count meter: each event is one call, whatever its value.
            await app.ok(
                "POST",
                "/v1/usage/events",
                json={
                    "events": [
                        {"id": f"call-{n}", "meter": "api_calls", "value": 1}
                        for n in range(CAPPED_API_CALLS)
                    ]
                },
            )
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            response = await http.post(
                "/v1/authorize",
                json={"model": "test-chat", "usage": {"input_tokens": 1}},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert response.status_code == 429
        assert response.json()["type"].endswith("/quota-exceeded")


class TestEntitlements:
    async def test_feature_not_in_plan_is_403_naming_the_plan_that_has_it(
        self, stack: Stack
    ) -> None:
        _, key = await stack.customer()
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            response = await http.post(
                "/v1/authorize",
                json={"model": "test-chat", "features": ["batch_generation"]},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert response.status_code == 403
        problem = response.json()
        assert problem["type"].endswith("/feature-not-in-plan")
        assert (problem["feature"], problem["required_plan"]) == ("batch_generation", "pro")

    async def test_resource_tier_not_in_plan_is_403(self, stack: Stack) -> None:
        _, key = await stack.customer()
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            response = await http.post(
                "/v1/authorize",
                json={"model": "test-chat", "resource_tier": "large"},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert response.status_code == 403
        assert response.json()["type"].endswith("/resource-tier-not-in-plan")
        assert response.json()["required_plan"] == "pro"

    async def test_pro_plan_has_the_feature(self, stack: Stack) -> None:
        _, key = await stack.customer(plan="pro")
        async with Api(stack.base_url, key) as app:
            decision = await app.ok(
                "POST",
                "/v1/authorize",
                json={
                    "model": "test-chat",
                    "features": ["batch_generation"],
                    "resource_tier": "large",
                },
            )
        assert decision["allowed"] is True
