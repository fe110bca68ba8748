"""The SDK covers the whole control API, and its generated code is the document's.

Every (method, path) of the server's OpenAPI document has an SDK method in
`routes.OPERATIONS` or is left out on purpose in `NOT_IN_SDK` (the gateway, Stripe's webhook);
every entry of either names a route of the document; every method exists on `Client` and on
`AsyncClient`. The models and resource modules on disk are what `codegen` writes from the
document now: a route or a response member changed without regenerating fails here.
"""

from __future__ import annotations

import inspect
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from tollhouse import AsyncClient, Client
from tollhouse.api.app import create_app
from tollhouse.sdk import codegen
from tollhouse.sdk.routes import NOT_IN_SDK, OPERATIONS, Operation

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("models", "resources")
HANDWRITTEN = {"models/_model.py"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return create_app().openapi()


def routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def table() -> set[tuple[str, str]]:
    return {(op.http_method, op.path) for op in OPERATIONS}


def test_every_route_has_a_method_or_a_reason(document: dict[str, Any]) -> None:
    assert routes(document) - table() - set(NOT_IN_SDK) == set()


def test_every_method_and_exclusion_names_a_route(document: dict[str, Any]) -> None:
    assert (table() | set(NOT_IN_SDK)) - routes(document) == set()
    assert table() & set(NOT_IN_SDK) == set()


def test_the_gateway_and_stripes_webhook_are_left_out() -> None:
    assert ("POST", "/v1/chat/completions") in NOT_IN_SDK
    assert ("POST", "/v1/messages") in NOT_IN_SDK
    assert ("POST", "/v1/payments/stripe/webhook") in NOT_IN_SDK


def test_each_route_has_one_method_and_each_method_one_route() -> None:
    assert [
        k for k, n in Counter((op.http_method, op.path) for op in OPERATIONS).items() if n > 1
    ] == []
    assert [
        k for k, n in Counter((op.resource, op.name) for op in OPERATIONS).items() if n > 1
    ] == []


@pytest.fixture(scope="module")
def clients() -> tuple[Client, AsyncClient]:
    return Client(api_key="th_unused"), AsyncClient(api_key="th_unused")


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda op: f"{op.resource}.{op.name}")
def test_both_clients_have_the_method(
    operation: Operation, clients: tuple[Client, AsyncClient]
) -> None:
    sync, asynchronous = (
        getattr(getattr(client, operation.resource), operation.name) for client in clients
    )
    sync_returns = inspect.signature(sync).return_annotation
    async_returns = inspect.signature(asynchronous).return_annotation

    if operation.cursor is None:
        assert not inspect.iscoroutinefunction(sync)
        assert inspect.iscoroutinefunction(asynchronous)
        assert sync_returns == async_returns
    else:  # a page iterator: `for` / `async for`
        assert sync_returns.startswith("SyncPage[")
        assert async_returns == sync_returns.replace("SyncPage", "AsyncPage", 1)


def test_generated_modules_are_current(document: dict[str, Any]) -> None:
    expected = codegen.formatted(codegen.generate(document), ROOT)
    on_disk = {
        str(path.relative_to(codegen.PACKAGE)): path.read_text()
        for folder in GENERATED
        for path in (codegen.PACKAGE / folder).glob("*.py")
        if str(path.relative_to(codegen.PACKAGE)) not in HANDWRITTEN
    }

    assert sorted(on_disk) == sorted(expected), "run: python -m tollhouse.sdk.codegen"
    stale = [name for name in expected if on_disk[name] != expected[name]]
    assert stale == [], "run: python -m tollhouse.sdk.codegen"
