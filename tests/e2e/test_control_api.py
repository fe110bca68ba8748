"""The control API over HTTP: customers, keys, credits, usage, the sidecar trio, bad input.

Story: an operator onboards customers and grants credits; a customer's own key sees only its
own customer; an app that calls its models itself asks `/v1/authorize`, then captures or voids
the hold and reports usage events; malformed or hostile input is refused with problem+json and
leaves stored data untouched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
from tests.e2e.conftest import Stack
from tests.support.server import Api

PROBLEM_JSON = "application/problem+json"


async def raw(
    stack: Stack,
    key: str,
    method: str,
    url: str,
    headers: dict[str, str] | None = None,
    **kwargs: object,
) -> httpx.Response:
    """Call without asserting success, to check error answers."""
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        return await http.request(
            method,
            url,
            headers={"Authorization": f"Bearer {key}", **(headers or {})},
            **kwargs,  # type: ignore[arg-type]
        )


class TestCustomersAndTenancy:
    async def test_new_customer_is_on_the_default_plan(self, stack: Stack) -> None:
        created = await stack.operator.ok("POST", "/v1/customers", json={"name": "Ada"})
        assert created["plan"] == "free"
        assert created["id"].startswith("cus_")

    async def test_customer_key_reads_itself_through_me(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        async with Api(stack.base_url, key) as own:
            assert (await own.ok("GET", "/v1/customers/me"))["id"] == customer_id

    async def test_customer_key_cannot_see_another_customer(self, stack: Stack) -> None:
        other_id, _ = await stack.customer()
        _, key = await stack.customer()
        for url in (f"/v1/customers/{other_id}", f"/v1/customers/{other_id}/balance"):
            response = await raw(stack, key, "GET", url)
            assert response.status_code == 404
            assert response.headers["content-type"] == PROBLEM_JSON

    async def test_customer_key_cannot_create_customers(self, stack: Stack) -> None:
        _, key = await stack.customer()
        response = await raw(stack, key, "POST", "/v1/customers", json={"name": "x"})
        assert response.status_code == 403
        assert response.json()["type"].endswith("/forbidden")

    async def test_customer_key_cannot_grant_itself_credits(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        response = await raw(
            stack,
            key,
            "POST",
            f"/v1/customers/{customer_id}/credits/grants",
            json={"amount_micros": 5, "idempotency_key": "x"},
        )
        assert response.status_code == 403
        assert await stack.available(customer_id) == 1_000_000

    async def test_missing_key_is_401_problem(self, stack: Stack) -> None:
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            response = await http.get("/v1/customers")
        assert response.status_code == 401
        assert response.headers["content-type"] == PROBLEM_JSON
        assert response.json()["status"] == 401


class TestKeys:
    async def test_secret_is_shown_once_and_never_listed(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        listed = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/keys")
        assert key not in str(listed)
        assert key.startswith(listed[0]["prefix"])

    async def test_revoked_key_stops_working(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        key_id = (await stack.operator.ok("GET", f"/v1/customers/{customer_id}/keys"))[0]["id"]
        revoked = await stack.operator.ok("DELETE", f"/v1/keys/{key_id}")
        assert revoked["revoked_at"] is not None
        assert (await raw(stack, key, "GET", "/v1/customers/me")).status_code == 401

    async def test_admin_scope_is_needed_to_issue_keys(self, stack: Stack) -> None:
        customer_id, key = await stack.customer()
        response = await raw(stack, key, "POST", f"/v1/customers/{customer_id}/keys", json={})
        assert response.status_code == 403
        assert response.json()["type"].endswith("/insufficient-scope")


class TestCredits:
    async def test_grant_is_idempotent(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer(credits_micros=0)
        body = {"amount_micros": 2_500_000, "idempotency_key": "order-1"}
        url = f"/v1/customers/{customer_id}/credits/grants"
        first = await stack.operator.ok("POST", url, json=body)
        second = await stack.operator.ok("POST", url, json=body)
        assert first["id"] == second["id"]
        assert await stack.available(customer_id) == 2_500_000

    async def test_transactions_list_the_grant(self, stack: Stack) -> None:
        customer_id, _ = await stack.customer(credits_micros=700)
        entries = await stack.operator.ok("GET", f"/v1/customers/{customer_id}/transactions")
        assert [e["amount_micros"] for e in entries if e["kind"] == "grant"] == [700]

    async def test_float_negative_and_zero_amounts_are_422_and_store_nothing(
        self, stack: Stack
    ) -> None:
        customer_id, _ = await stack.customer(credits_micros=100)
        url = f"/v1/customers/{customer_id}/credits/grants"
        for amount in (-5, 0, 1.5, "10", None, 2**70):
            response = await raw(
                stack,
                stack.operator_key,
                "POST",
                url,
                json={"amount_micros": amount, "idempotency_key": f"bad-{amount}"},
            )
            assert response.status_code == 422, (amount, response.text)
            assert response.headers["content-type"] == PROBLEM_JSON
            assert response.json()["errors"]
        assert await stack.available(customer_id) == 100

    async def test_grant_to_unknown_customer_is_404(self, stack: Stack) -> None:
        response = await raw(
            stack,
            stack.operator_key,
            "POST",
            "/v1/customers/cus_nope/credits/grants",
            json={"amount_micros": 5, "idempotency_key": "k"},
        )
        assert response.status_code == 404


class TestSidecar:
    async def test_authorize_capture_releases_the_rest(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=10_000)
        async with Api(stack.base_url, key) as app:
            decision = await app.ok(
                "POST",
                "/v1/authorize",
                json={"model": "test-image", "usage": {"images": 0, "requests": 1}},
            )
            assert decision["allowed"] is True
            assert decision["hold"] is None  # nothing to pay for zero images
            decision = await app.ok(
                "POST",
                "/v1/authorize",
                json={"model": "test-chat", "usage": {"input_tokens": 1000}},
            )
            hold = decision["hold"]
            assert hold["amount_micros"] == 1000
            assert await stack.available(customer_id) == 9_000
            captured = await app.ok(
                "POST", f"/v1/holds/{hold['id']}/capture", json={"amount_micros": 400}
            )
            assert captured["status"] == "captured"
            again = await app.ok(
                "POST", f"/v1/holds/{hold['id']}/capture", json={"amount_micros": 400}
            )
            assert again["captured_micros"] == 400
        assert await stack.available(customer_id) == 9_600

    async def test_void_releases_everything(self, stack: Stack) -> None:
        customer_id, key = await stack.customer(credits_micros=10_000)
        async with Api(stack.base_url, key) as app:
            decision = await app.ok(
                "POST", "/v1/authorize", json={"model": "test-chat", "usage": {"input_tokens": 500}}
            )
            await app.ok("POST", f"/v1/holds/{decision['hold']['id']}/void")
        assert await stack.available(customer_id) == 10_000

    async def test_authorize_without_credit_is_402(self, stack: Stack) -> None:
        _, key = await stack.customer(credits_micros=10)
        response = await raw(
            stack,
            key,
            "POST",
            "/v1/authorize",
            json={"model": "test-chat", "usage": {"input_tokens": 1000}},
        )
        assert response.status_code == 402
        assert response.json()["type"].endswith("/insufficient-credit")

    async def test_another_customers_hold_is_404(self, stack: Stack) -> None:
        _, key = await stack.customer()
        _, other_key = await stack.customer()
        async with Api(stack.base_url, key) as app:
            decision = await app.ok(
                "POST", "/v1/authorize", json={"model": "test-chat", "usage": {"input_tokens": 5}}
            )
        response = await raw(
            stack,
            other_key,
            "POST",
            f"/v1/holds/{decision['hold']['id']}/capture",
            json={"amount_micros": 1},
        )
        assert response.status_code == 404

    async def test_usage_events_count_once_per_id(self, stack: Stack) -> None:
        _customer_id, key = await stack.customer()
        events = {
            "events": [
                {"id": "job-1", "meter": "images", "value": 3},
                {"id": "job-2", "meter": "images", "value": 4},
            ]
        }
        async with Api(stack.base_url, key) as app:
            first = await app.ok("POST", "/v1/usage/events", json=events)
            second = await app.ok("POST", "/v1/usage/events", json=events)
            usage = await app.ok("GET", "/v1/usage", params={"meter": "images"})
        assert (first["accepted"], first["duplicates"]) == (2, 0)
        assert (second["accepted"], second["duplicates"]) == (0, 2)
        assert usage["buckets"][0]["value"] == 7

    async def test_usage_event_batch_with_one_bad_event_stores_nothing(self, stack: Stack) -> None:
        _, key = await stack.customer()
        events = {
            "events": [
                {"id": "ok-1", "meter": "images", "value": 3},
                {"id": "bad", "meter": "no_such_meter", "value": 1},
            ]
        }
        response = await raw(stack, key, "POST", "/v1/usage/events", json=events)
        assert response.status_code == 422
        async with Api(stack.base_url, key) as app:
            usage = await app.ok("GET", "/v1/usage", params={"meter": "images"})
        assert [(b["meter"], b["value"]) for b in usage["buckets"]] == [("images", 0)]


class TestBadInput:
    async def test_malformed_json_is_400(self, stack: Stack) -> None:
        _, key = await stack.customer()
        for url in ("/v1/chat/completions", "/v1/authorize"):
            response = await raw(
                stack,
                key,
                "POST",
                url,
                content=b"{not json",
                headers={"content-type": "application/json"},
            )
            assert response.status_code == 400, (url, response.text)

    async def test_wrong_types_are_4xx_without_calling_upstream(self, stack: Stack) -> None:
        _, key = await stack.customer()
        bodies = [
            {"model": "test-chat", "messages": "hi"},
            {"model": 5, "messages": []},
            {
                "model": "test-chat",
                "messages": [{"role": "user", "content": "x"}],
                "max_tokens": -1,
            },
            {"model": "test-chat", "messages": [{"role": "user", "content": "x"}], "stream": "yes"},
            [1, 2, 3],
        ]
        for body in bodies:
            response = await raw(stack, key, "POST", "/v1/chat/completions", json=body)
            assert response.status_code == 400, (body, response.text)
            assert response.json()["error"]["message"]
        assert stack.upstream.requests == []

    async def test_huge_body_is_413(self, stack: Stack) -> None:
        _, key = await stack.customer()
        huge = {"model": "test-chat", "messages": [{"role": "user", "content": "x" * 100_000}]}
        response = await raw(stack, key, "POST", "/v1/chat/completions", json=huge)
        assert response.status_code == 413
        response = await raw(
            stack, key, "POST", "/v1/usage/events", json={"events": [{"id": "x" * 100_000}]}
        )
        assert response.status_code == 413

    async def test_huge_chunked_body_without_a_length_is_413(self, stack: Stack) -> None:
        _, key = await stack.customer()

        async def chunks() -> AsyncIterator[bytes]:
            yield b'{"model": "test-chat", "messages": [{"role": "user", "content": "'
            for _ in range(100):
                yield b"x" * 1000
            yield b'"}]}'

        for url in ("/v1/chat/completions", "/v1/usage/events"):
            response = await raw(stack, key, "POST", url, content=chunks())
            assert response.status_code == 413, (url, response.text)
        assert stack.upstream.requests == []

    async def test_unknown_route_is_404_problem(self, stack: Stack) -> None:
        response = await raw(stack, stack.operator_key, "GET", "/v1/nothing-here")
        assert response.status_code == 404
        assert response.headers["content-type"] == PROBLEM_JSON

    async def test_openapi_document_is_served(self, stack: Stack) -> None:
        async with httpx.AsyncClient(base_url=stack.base_url) as http:
            document = (await http.get("/openapi.json")).json()
            docs = await http.get("/docs")
        assert "/v1/authorize" in document["paths"]
        assert docs.status_code == 200
