"""Schemathesis over the served OpenAPI document, against a real server (bounded, every run).

The story: Schemathesis reads the document the server serves at `/openapi.json` and, for every
operation, sends a real server the document's examples, its coverage cases (edges, missing and
wrong-typed fields, methods the path does not take) and a few random inputs, with an operator
key and with the `admin` keys of two tenants, A and B, each owning one object of every kind a
path names (`tests.support.tenants`). An operation with path parameters is also called with
real ids in them: each tenant's own, with its own key, and B's with the operator's key, so
the answers about real objects (not only unknown ids) are checked too.
Every answer must be no 5xx, a status the operation documents, with a documented content type
and a body and headers matching the documented schema. Runs on SQLite and, when reachable,
PostgreSQL. Stripe is configured, on the local Stripe server (the webhook answers unsigned
bodies 400).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    allow_header_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
    unsupported_method,
)
from tests.conftest import create_postgres_database, drop_postgres_database
from tests.e2e.conftest import running_stack
from tests.support.background import in_background
from tests.support.stripe import API_KEY, WEBHOOK_SECRET, FakeStripe
from tests.support.tenants import Tenant, populated_tenant
from tests.support.upstream import FakeUpstream

from tollhouse.api.app import create_app
from tollhouse.config import Settings
from tollhouse.server.runtime import Runtime

MAX_EXAMPLES = 5
"""Random inputs per operation (after the examples and coverage phases): keeps the run
bounded, under a minute on two cores for both databases."""

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
    unsupported_method,
    allow_header_conformance,
]

SEED = 20260317
"""A fixed seed: every run sends the same inputs (change it to explore others)."""

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {
            "coverage": {"unexpected-methods": ["OPTIONS", "PATCH"]},
            "stateful": {"enabled": False},
        },
        "suppress-health-check": ["all"],
    }
)


@dataclass(frozen=True)
class Live:
    """A served tollhouse: its URL, an operator key and two populated tenants."""

    base_url: str
    operator_key: str
    tenants: dict[str, Tenant]

    def callers(self, case: schemathesis.Case[Any]) -> list[tuple[str, str, dict[str, str]]]:
        """(who, key, path parameters to put in) for every call of `case`: the operator and
        each tenant with the generated path parameters; when the path names ids, each tenant
        with its own ids too, and the operator with B's."""
        calls: list[tuple[str, str, dict[str, str]]] = [("the operator", self.operator_key, {})]
        a, b = self.tenants["a"], self.tenants["b"]
        if not case.path_parameters:
            return [*calls, ("tenant a", a.key, {}), ("tenant b", b.key, {})]
        return [
            *calls,
            ("tenant a", a.key, {}),
            ("tenant a with its own ids", a.key, a.ids),
            ("tenant b with its own ids", b.key, b.ids),
            ("the operator with tenant b's ids", self.operator_key, b.ids),
        ]


@asynccontextmanager
async def _live(directory: Path, database: str) -> AsyncIterator[Live]:
    database_url = await create_postgres_database() if database == "postgres" else None
    upstream = FakeUpstream(slow_seconds=0.1)
    await upstream.start()
    stripe = FakeStripe()
    await stripe.start()
    settings: dict[str, Any] = {
        "stripe_api_key": API_KEY,
        "stripe_webhook_secret": WEBHOOK_SECRET,
        "stripe_api_base": stripe.base_url,
        "checkout_success_url": "https://app.example/paid",
    }
    try:
        async with running_stack(
            directory, upstream, database_url=database_url, **settings
        ) as stack:
            tenants = {name: await populated_tenant(stack, name) for name in ("a", "b")}
            yield Live(stack.base_url, stack.operator_key, tenants)
    finally:
        await upstream.stop()
        await stripe.stop()
        if database_url is not None:
            await drop_postgres_database(database_url)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    directory = tmp_path_factory.mktemp(f"contract-{request.param}")
    with in_background(lambda: _live(directory, request.param)) as served:
        yield served


def _document() -> dict[str, Any]:
    """The document the server serves, built at collection to parametrize the test by
    operation (`test_openapi` checks that `/openapi.json` is this document)."""
    unused = "sqlite+aiosqlite:///never-opened.db"  # the runtime is never started
    settings = Settings(database_url=unused, _env_file=None)  # type: ignore[call-arg]
    return create_app(Runtime(settings)).openapi()


schema = schemathesis.openapi.from_dict(_document(), config=CONFIG)


@schema.parametrize()
def test_every_operation_keeps_its_contract(case: schemathesis.Case[Any], live: Live) -> None:
    """No 5xx, and every status, content type, body and header is one the document names,
    with the operator's key and with each tenant's, with the generated path parameters and
    with real ids (the same inputs, generated once)."""
    for who, key, ids in live.callers(case):
        call = case.derive()
        if ids:
            call.path_parameters = {
                name: ids.get(name, value) for name, value in case.path_parameters.items()
            }
        try:
            call.call_and_validate(
                base_url=live.base_url,
                headers={"Authorization": f"Bearer {key}"},
                checks=CHECKS,
                timeout=30,
            )
        except Exception as failure:
            failure.add_note(f"(called by {who}: {call.path_parameters})")
            raise


GATEWAY_CALLS = [
    (
        "/v1/chat/completions",
        {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}]},
    ),
    (
        "/v1/chat/completions",
        {"model": "test-chat", "messages": [{"role": "user", "content": "hi"}], "stream": True},
    ),
    ("/v1/completions", {"model": "test-chat", "prompt": "hi"}),
    ("/v1/embeddings", {"model": "test-embed", "input": ["hi", "there"]}),
    ("/v1/images/generations", {"model": "test-image", "prompt": "a lighthouse", "n": 2}),
    ("/v1/audio/speech", {"model": "test-tts", "input": "hello", "voice": "alloy"}),
    ("/v1/moderations", {"input": ["hello", "there"]}),
]


@pytest.mark.parametrize(("path", "body"), GATEWAY_CALLS)
def test_gateway_answers_match_the_document(path: str, body: dict[str, Any], live: Live) -> None:
    """Random bodies rarely name a model of the catalog: a served call of each gateway route
    (answered by the upstream) is checked against the document too."""
    case = schema[path]["POST"].Case(body=body, media_type="application/json")
    response = case.call_and_validate(
        base_url=live.base_url,
        headers={"Authorization": f"Bearer {live.tenants['a'].key}"},
        checks=CHECKS,
        timeout=30,
    )
    assert response.status_code == 200, response.text
