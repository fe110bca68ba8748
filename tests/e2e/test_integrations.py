"""tollhouse inside an application (`tollhouse.integrations`): a FastAPI app and a plain
Starlette app on the running stack's in-process runtime, called through HTTP (httpx's ASGI
transport). A unit of work is held before the endpoint runs, captured at the price of what
it used when the response succeeds, voided on an error status or an exception; denials are
tollhouse's problem+json and the endpoint never runs. `RemoteToll` does the same against
the stack's server through the SDK.

`test-chat` costs 1 micro per input token and 2 per output token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from tests.e2e.conftest import Stack

from tollhouse import AsyncClient
from tollhouse.integrations import (
    LocalToll,
    RemoteToll,
    Requirement,
    TollMiddleware,
    Work,
    authorize,
    install,
    requires,
)
from tollhouse.metering import service as metering

ESTIMATE = {"input_tokens": 1_000, "output_tokens": 500}
"""Held: 1,000 + 2 * 500 = 2,000 micros."""


def analysis_app(stack: Stack, ran: list[str]) -> FastAPI:
    toll = LocalToll(stack.runtime)
    app = FastAPI()
    install(app, toll)
    charge = requires(toll, model="test-chat", usage=ESTIMATE)

    @app.post("/analyze")
    async def analyze(work: Work = charge) -> dict[str, object]:
        ran.append("analyze")
        work.use(input_tokens=100, output_tokens=40)  # costs 180 micros
        return {"work": work.id, "held": work.held_micros}

    @app.post("/conflict")
    async def conflict(work: Work = charge) -> None:
        ran.append("conflict")
        raise HTTPException(409, "the job is already running")

    @app.post("/crash")
    async def crash(work: Work = charge) -> None:
        ran.append("crash")
        raise RuntimeError("the model server fell over")

    return app


@pytest.fixture
async def ran() -> list[str]:
    return []


@pytest.fixture
async def client(stack: Stack, ran: list[str]) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=analysis_app(stack, ran), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        yield http


async def usage_of(stack: Stack, customer_id: str) -> dict[str, int]:
    await stack.runtime.drain()
    now = stack.runtime.clock.now()
    async with stack.runtime.db.transaction() as session:
        totals = await metering.totals(
            session, customer_id=customer_id,
            meters={"api_calls": "count", "input_tokens": "sum", "output_tokens": "sum"},
            start=now.replace(year=now.year - 1), end=now.replace(year=now.year + 1),
        )  # fmt: skip
    return dict(totals)


async def test_a_successful_response_captures_what_the_work_used_and_records_it(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    customer_id, key = await stack.customer(credits_micros=10_000)

    answer = await client.post("/analyze", headers={"Authorization": f"Bearer {key}"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["held"] == 2_000
    assert answer.headers["x-tollhouse-balance-micros"] == "8000"  # after the hold
    assert "ratelimit-remaining" in answer.headers
    assert await stack.available(customer_id) == 10_000 - 180
    assert await usage_of(stack, customer_id) == {
        "api_calls": 1, "input_tokens": 100, "output_tokens": 40,
    }  # fmt: skip


async def test_an_error_status_or_an_exception_voids_the_hold_and_records_nothing(
    stack: Stack, client: httpx.AsyncClient, ran: list[str]
) -> None:
    customer_id, key = await stack.customer(credits_micros=10_000)
    auth = {"x-api-key": key}

    conflict = await client.post("/conflict", headers=auth)
    crash = await client.post("/crash", headers=auth)

    assert (conflict.status_code, crash.status_code) == (409, 500)
    assert ran == ["conflict", "crash"]
    assert await stack.available(customer_id) == 10_000
    assert await usage_of(stack, customer_id) == {
        "api_calls": 0,
        "input_tokens": 0,
        "output_tokens": 0,
    }


async def test_a_denial_is_tollhouses_problem_and_the_endpoint_never_runs(
    stack: Stack, client: httpx.AsyncClient, ran: list[str]
) -> None:
    customer_id, key = await stack.customer(credits_micros=1_000)  # less than the 2,000 held

    broke = await client.post("/analyze", headers={"Authorization": f"Bearer {key}"})
    anonymous = await client.post("/analyze")

    assert broke.status_code == 402
    assert broke.headers["content-type"] == "application/problem+json"
    assert broke.json()["type"].endswith("/insufficient-credit")
    assert anonymous.status_code == 401
    assert ran == []
    assert await stack.available(customer_id) == 1_000


async def test_a_retry_with_its_idempotency_key_is_one_work_charged_once(
    stack: Stack, client: httpx.AsyncClient
) -> None:
    customer_id, key = await stack.customer(credits_micros=10_000)
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "job-42"}

    first = await client.post("/analyze", headers=headers)
    again = await client.post("/analyze", headers=headers)

    assert first.json()["work"] == again.json()["work"]
    assert await stack.available(customer_id) == 10_000 - 180
    assert (await usage_of(stack, customer_id))["api_calls"] == 1


async def test_plain_asgi_middleware_authorizes_by_route_and_settles(stack: Stack) -> None:
    customer_id, key = await stack.customer(credits_micros=10_000)

    async def render(request: Request) -> JSONResponse:
        [work] = request.scope["tollhouse.works"]
        work.use(input_tokens=10, output_tokens=5)  # costs 20 micros
        return JSONResponse({"customer": work.customer_id})

    async def fail(request: Request) -> JSONResponse:
        return JSONResponse({"error": "upstream down"}, status_code=503)

    rules = {
        ("POST", "/render"): Requirement("test-chat", ESTIMATE),
        ("POST", "/fail"): Requirement("test-chat", ESTIMATE),
    }
    app = TollMiddleware(
        Starlette(routes=[Route("/render", render, methods=["POST"]),
                          Route("/fail", fail, methods=["POST"])]),
        toll=LocalToll(stack.runtime), rules=rules,
    )  # fmt: skip
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        auth = {"Authorization": f"Bearer {key}"}
        rendered = await http.post("/render", headers=auth)
        failed = await http.post("/fail", headers=auth)
        free = await http.get("/render")  # no rule for GET: not tollhouse's business

    assert rendered.status_code == 200 and rendered.json() == {"customer": customer_id}
    assert rendered.headers["x-tollhouse-balance-micros"] == "8000"
    assert failed.status_code == 503
    assert free.status_code == 405
    assert await stack.available(customer_id) == 10_000 - 20


async def test_a_kept_work_is_left_held_until_the_application_settles_it(stack: Stack) -> None:
    customer_id, key = await stack.customer(credits_micros=10_000)
    toll = LocalToll(stack.runtime)
    app = FastAPI()
    install(app, toll)
    queued: list[Work] = []

    @app.post("/jobs", status_code=202)
    async def queue(request: Request) -> dict[str, str]:
        work = await authorize(request, toll, Requirement("test-chat", {"output_tokens": 1_000}))
        work.keep()
        queued.append(work)
        return {"job": work.id}

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
        answer = await http.post("/jobs", headers={"Authorization": f"Bearer {key}"})
    held = await stack.available(customer_id)
    [work] = queued
    work.use(output_tokens=300)  # the job ends having made 300 tokens
    await toll.settle(work, succeeded=True)

    assert answer.status_code == 202
    assert held == 10_000 - 2_000  # still held after the response
    assert await stack.available(customer_id) == 10_000 - 600


async def test_a_remote_tollhouse_through_the_sdk_settles_the_same_and_passes_denials_on(
    stack: Stack,
) -> None:
    customer_id, key = await stack.customer(credits_micros=10_000)
    _, broke_key = await stack.customer(credits_micros=1_000)
    async with AsyncClient(
        base_url=stack.base_url, api_key=stack.operator_key, max_retries=0
    ) as client:
        toll = RemoteToll(client)
        app = FastAPI()
        install(app, toll)
        charge = requires(toll, model="test-chat", usage=ESTIMATE)

        @app.post("/analyze")
        async def analyze(work: Work = charge) -> dict[str, object]:
            work.use(input_tokens=100, output_tokens=40)  # costs 180 micros
            return {"customer": work.customer_id}

        @app.post("/crash")
        async def crash(work: Work = charge) -> None:
            raise RuntimeError("the model server fell over")

        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as http:
            served = await http.post("/analyze", headers={"Authorization": f"Bearer {key}"})
            crashed = await http.post("/crash", headers={"Authorization": f"Bearer {key}"})
            broke = await http.post("/analyze", headers={"Authorization": f"Bearer {broke_key}"})
            anonymous = await http.post("/analyze", headers={"Authorization": "Bearer th_x"})

    assert served.status_code == 200 and served.json() == {"customer": customer_id}
    assert served.headers["x-tollhouse-balance-micros"] == "8000"
    assert "ratelimit-remaining" in served.headers
    assert crashed.status_code == 500
    assert await stack.available(customer_id) == 10_000 - 180
    assert await usage_of(stack, customer_id) == {
        "api_calls": 1, "input_tokens": 100, "output_tokens": 40,
    }  # fmt: skip
    assert broke.status_code == 402
    assert broke.headers["content-type"] == "application/problem+json"
    assert broke.json()["type"].endswith("/insufficient-credit")
    assert broke.json()["instance"] == "/analyze"
    assert anonymous.status_code == 401


def test_a_requirement_with_a_quantity_tollhouse_does_not_hold_for_fails_where_it_is_written() -> (
    None
):
    with pytest.raises(ValueError, match="usage has no \\['gpu_hours'\\]"):
        Requirement("test-chat", {"gpu_hours": 2})
    with pytest.raises(ValueError):
        Requirement("test-chat", {"images": -1})
