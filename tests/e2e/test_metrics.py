"""`/metrics` and request ids on the served app (one process, SQLite).

Story: an operator points Prometheus at tollhouse. Each thing that happens moves its metric:
a gateway call counts one request under its route's template, one hold and one capture with
their micros, its usage events, one rate-limit decision, its added and upstream latency and
the ledger's transactions; a refused call counts under its problem code; a failed upstream
voids its hold; a webhook attempt counts by outcome. Every answer carries an `X-Request-Id`,
and a call's id is that id unless the client chose its own.

The process's metrics live as long as the test process does: each test compares a scrape
before with one after.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from tests.e2e.conftest import Stack, running_stack
from tests.support.catalog import TEXT_RPM_FREE
from tests.support.metrics import Scrape
from tests.support.receiver import WebhookReceiver
from tests.support.upstream import FakeUpstream

CHAT = "/v1/chat/completions"
CALL = {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]}
HOLD_MICROS = 208
"""test-chat's hold for CALL: its prompt's estimate (8 tokens at 1 micro) and the 100 output
tokens it may ask for at 2."""
CALL_MICROS = 26
"""What the FakeUpstream's usage (12 in, 7 out) costs at test-chat's prices."""
WAIT_SECONDS = 20.0


async def scrape(stack: Stack) -> Scrape:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        response = await http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return Scrape(response.text)


async def call(stack: Stack, key: str, body: dict[str, object], **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
        return await http.post(
            CHAT, json=body, headers={"Authorization": f"Bearer {key}", **headers}
        )


class TestGatewayCall:
    async def test_an_answered_call_moves_every_metric_of_its_path(self, stack: Stack) -> None:
        _, key = await stack.customer(plan="lifetime")
        before = await scrape(stack)
        accepted_before = stack.runtime.recorder.stats.accepted

        answered = await call(stack, key, CALL)
        await stack.runtime.drain()
        after = await scrape(stack)

        assert answered.status_code == 200, answered.text

        def delta(name: str, **labels: str) -> float:
            return after.value(name, **labels) - before.value(name, **labels)

        ok = {"route": CHAT, "method": "POST", "status": "200", "reason": ""}
        assert delta("tollhouse_http_requests_total", **ok) == 1
        assert delta("tollhouse_ledger_holds_total", currency="usd") == 1
        assert delta("tollhouse_ledger_hold_micros_total", currency="usd") == HOLD_MICROS
        assert delta("tollhouse_ledger_captures_total", currency="usd") == 1
        assert delta("tollhouse_ledger_capture_micros_total", currency="usd") == CALL_MICROS
        assert delta("tollhouse_ledger_voids_total", currency="usd") == 0
        written = stack.runtime.recorder.stats.accepted - accepted_before
        assert written >= 1
        assert delta("tollhouse_usage_events_total", outcome="written") == written
        # lifetime: no rate limit, so no decision
        assert delta("tollhouse_ratelimit_decisions_total") == 0
        assert delta("tollhouse_gateway_added_latency_seconds_count", route=CHAT) == 1
        assert 0 < delta("tollhouse_gateway_added_latency_seconds_sum", route=CHAT) < 5
        assert delta("tollhouse_upstream_latency_seconds_count", model="test-chat") == 1
        transactions = delta("tollhouse_ledger_commit_duration_seconds_count")
        assert transactions >= 1
        assert delta("tollhouse_ledger_batch_operations_count") == transactions
        assert delta("tollhouse_ledger_batch_operations_sum") >= 2  # the hold and the capture

    async def test_a_failed_upstream_voids_its_hold(self, stack: Stack) -> None:
        _, key = await stack.customer(plan="lifetime")
        before = await scrape(stack)

        failed = await call(stack, key, {**CALL, "model": "test-chat-500"})
        after = await scrape(stack)

        assert failed.status_code == 502
        voided = after.value("tollhouse_ledger_void_micros_total", currency="usd") - before.value(
            "tollhouse_ledger_void_micros_total", currency="usd"
        )
        assert voided == 10_000  # test-chat-500 costs $0.01 a request
        for name in ("tollhouse_ledger_voids_total", "tollhouse_ledger_holds_total"):
            assert after.value(name) - before.value(name) == 1
        assert after.value("tollhouse_ledger_captures_total") == before.value(
            "tollhouse_ledger_captures_total"
        )
        labels = {"route": CHAT, "status": "502", "reason": ""}
        assert (
            after.value("tollhouse_http_requests_total", **labels)
            - before.value("tollhouse_http_requests_total", **labels)
            == 1
        )
        assert (
            after.value("tollhouse_upstream_latency_seconds_count", model="test-chat-500")
            - before.value("tollhouse_upstream_latency_seconds_count", model="test-chat-500")
            == 1
        )


class TestDenials:
    async def test_refusals_count_under_their_problem_code(self, stack: Stack) -> None:
        _, broke = await stack.customer(plan="lifetime", credits_micros=0)
        _, limited = await stack.customer(plan="free")
        before = await scrape(stack)

        unpaid = await call(stack, broke, CALL)
        answers = [await call(stack, limited, CALL) for _ in range(TEXT_RPM_FREE + 1)]
        after = await scrape(stack)

        assert unpaid.status_code == 402
        assert [a.status_code for a in answers] == [200] * TEXT_RPM_FREE + [429]

        def delta(name: str, **labels: str) -> float:
            return after.value(name, **labels) - before.value(name, **labels)

        route = {"route": CHAT, "method": "POST"}
        assert delta("tollhouse_http_requests_total", **route, reason="insufficient-credit") == 1
        assert delta("tollhouse_http_requests_total", **route, status="402") == 1
        assert delta("tollhouse_http_requests_total", **route, reason="rate-limited") == 1
        assert delta("tollhouse_http_requests_total", **route, status="429") == 1
        assert delta("tollhouse_ratelimit_decisions_total", outcome="allowed") == TEXT_RPM_FREE
        assert delta("tollhouse_ratelimit_decisions_total", outcome="limited") == 1
        assert delta("tollhouse_ratelimit_decisions_total", outcome="backend-unavailable") == 0
        assert delta("tollhouse_ledger_holds_total") == TEXT_RPM_FREE
        for answer in (unpaid, answers[-1]):
            assert answer.headers["x-request-id"] == answer.headers["x-tollhouse-request-id"]

    async def test_an_unauthenticated_call_has_no_denial_reason(self, stack: Stack) -> None:
        before = await scrape(stack)

        refused = await call(stack, "th_live_nothing", CALL)
        after = await scrape(stack)

        assert refused.status_code == 401
        labels = {"route": CHAT, "status": "401", "reason": ""}
        assert (
            after.value("tollhouse_http_requests_total", **labels)
            - before.value("tollhouse_http_requests_total", **labels)
            == 1
        )


class TestRoutes:
    async def test_control_routes_count_by_template_and_unknown_paths_as_unmatched(
        self, stack: Stack
    ) -> None:
        customer_id, _ = await stack.customer()
        before = await scrape(stack)

        found = await stack.operator.client.get(f"/v1/customers/{customer_id}")
        missing = await stack.operator.client.get("/v1/customers/cus_none")
        unknown = await stack.operator.client.get("/no/such/path")
        after = await scrape(stack)

        assert (found.status_code, missing.status_code, unknown.status_code) == (200, 404, 404)
        template = "/v1/customers/{customer_id}"

        def delta(**labels: str) -> float:
            return after.value("tollhouse_http_requests_total", **labels) - before.value(
                "tollhouse_http_requests_total", **labels
            )

        assert delta(route=template, method="GET", status="200") == 1
        assert delta(route=template, method="GET", status="404") == 1
        assert delta(route="unmatched", method="GET", status="404") == 1
        routes = {
            labels["route"]
            for name, labels, _ in after.samples
            if name.startswith("tollhouse_http")
        }
        assert customer_id not in "".join(routes)  # never a raw path


class TestRequestId:
    async def test_a_generated_id_is_echoed_and_is_the_call_id(self, stack: Stack) -> None:
        _, key = await stack.customer(plan="lifetime")

        answered = await call(stack, key, CALL)

        request_id = answered.headers["x-request-id"]
        assert request_id.startswith("req_")
        assert answered.headers["x-tollhouse-request-id"] == request_id

    async def test_a_client_id_is_echoed_but_never_keys_a_charge(self, stack: Stack) -> None:
        _, key = await stack.customer(plan="lifetime")

        first = await call(stack, key, CALL, **{"X-Request-Id": "trace-1234"})
        second = await call(stack, key, CALL, **{"X-Request-Id": "trace-1234"})

        assert first.headers["x-request-id"] == second.headers["x-request-id"] == "trace-1234"
        call_ids = {
            first.headers["x-tollhouse-request-id"],
            second.headers["x-tollhouse-request-id"],
        }
        assert len(call_ids) == 2 and "trace-1234" not in call_ids
        assert first.headers["x-tollhouse-hold-id"] != second.headers["x-tollhouse-hold-id"]

    @pytest.mark.parametrize("sent", ["has space", "x" * 129, 'quote"d', ""])
    async def test_a_malformed_id_is_replaced(self, stack: Stack, sent: str) -> None:
        answered = await stack.operator.client.get("/health", headers={"X-Request-Id": sent})

        assert answered.status_code == 200
        assert answered.headers["x-request-id"].startswith("req_")


class TestWebhooks:
    @pytest.fixture
    async def receiver(self) -> AsyncIterator[WebhookReceiver]:
        started = WebhookReceiver(script=[500])
        await started.start()
        yield started
        await started.stop()

    async def test_attempts_count_by_outcome(self, stack: Stack, receiver: WebhookReceiver) -> None:
        created = await stack.operator.ok(
            "POST",
            "/v1/webhook-endpoints",
            json={"url": receiver.url, "event_types": ["session.*"]},
        )
        receiver.secret = created["secret"]
        before = await scrape(stack)
        _, key = await stack.customer()
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
            started = await http.post(
                "/v1/sessions",
                json={"product": "imaging", "idempotency_key": "s1"},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert started.status_code == 201, started.text
        # the first attempt is answered 500; the next, 5 to 6 s later (the schedule), 200
        async with asyncio.timeout(WAIT_SECONDS):
            while (await scrape(stack)).value(
                "tollhouse_webhook_attempts_total", outcome="succeeded"
            ) == before.value("tollhouse_webhook_attempts_total", outcome="succeeded"):
                await asyncio.sleep(0.1)
        after = await scrape(stack)

        def delta(outcome: str) -> float:
            return after.value("tollhouse_webhook_attempts_total", outcome=outcome) - before.value(
                "tollhouse_webhook_attempts_total", outcome=outcome
            )

        assert (delta("retrying"), delta("succeeded"), delta("failed")) == (1, 1, 0)


class TestAccess:
    async def test_metrics_are_open_and_report_readiness(self, stack: Stack) -> None:
        scraped = await scrape(stack)

        assert scraped.value("tollhouse_ready", check="database") == 1
        assert scraped.value("tollhouse_ready", check="migrations") == 1
        assert "redis" not in {labels.get("check") for _, labels, _ in scraped.samples}
        assert "tollhouse_http_requests" in scraped.families

    async def test_a_token_is_asked_for_when_set(
        self, tmp_path: Path, upstream: FakeUpstream
    ) -> None:
        async with running_stack(tmp_path, upstream, metrics_token="s3cret") as stack:
            async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
                anonymous = await http.get("/metrics")
                wrong = await http.get("/metrics", headers={"Authorization": "Bearer nope"})
                right = await http.get("/metrics", headers={"Authorization": "Bearer s3cret"})

        assert (anonymous.status_code, wrong.status_code) == (401, 401)
        assert anonymous.headers["content-type"] == "application/problem+json"
        assert right.status_code == 200
        assert list(text_string_to_metric_families(right.text))

    async def test_metrics_can_be_switched_off(
        self, tmp_path: Path, upstream: FakeUpstream
    ) -> None:
        async with running_stack(tmp_path, upstream, metrics=False) as stack:
            async with httpx.AsyncClient(base_url=stack.base_url, timeout=30) as http:
                answer = await http.get("/metrics")

        assert answer.status_code == 404


def test_every_family_is_named_by_the_conventions() -> None:
    """`tollhouse_` prefix; counters end in `_total` (the client adds it), times in
    `_seconds`, money in `_micros_total`."""
    families = list(REGISTRY.collect())
    names = {family.name for family in families if family.name.startswith("tollhouse_")}
    assert len(names) >= 14
    for family in families:
        if not family.name.startswith("tollhouse_"):
            continue
        if "micros" in family.name:
            assert family.type == "counter" and family.name.endswith("_micros"), family.name
        if "latency" in family.name or "duration" in family.name:
            assert family.name.endswith("_seconds"), family.name
