"""A live `tollhouse serve` for the SDK's tests (one per test module), and what the tests
share: the operator's clients, a customer with credits, a transport that loses an answer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from tests.cli.test_serve import environment, serving, sqlite_url
from tests.support.catalog import write_catalog

from tollhouse import Client
from tollhouse.keys import generate_key

GRANT_MICROS = 5_000_000
"""What `funded_customer` is granted: $5.00 (the test catalog's free plan includes none)."""


@dataclass(frozen=True)
class Server:
    """A running `tollhouse serve` with the test catalog, and its operator key."""

    base_url: str
    operator_key: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    directory = tmp_path_factory.mktemp("serve")
    operator_key = generate_key()
    env = environment(
        TOLLHOUSE_DATABASE_URL=sqlite_url(directory / "th.db"),
        TOLLHOUSE_CATALOG=str(write_catalog(directory, "http://127.0.0.1:9/v1")),
        TOLLHOUSE_BOOTSTRAP_KEY=operator_key,
    )
    with serving(directory, env) as served:
        yield Server(served.base_url, operator_key)


@pytest.fixture
def operator(server: Server) -> Iterator[Client]:
    with Client(base_url=server.base_url, api_key=server.operator_key) as client:
        yield client


@pytest.fixture
def funded_customer(operator: Client) -> str:
    """A new customer's id, granted `GRANT_MICROS`."""
    customer = operator.customers.create(name="Ada")
    operator.credits.grant(customer.id, amount_micros=GRANT_MICROS)
    return customer.id


class LosesAnswers:
    """Which answers a test transport loses: the first `count` to requests whose path ends
    with `path_suffix`, after the server handled them (or, with `status`, answers that status
    instead, without forwarding). Records every request body it forwards."""

    def __init__(self, path_suffix: str, *, count: int = 1, status: int | None = None) -> None:
        self.path_suffix = path_suffix
        self.remaining = count
        self.status = status
        self.bodies: list[bytes] = []

    def intercepts(self, request: httpx.Request) -> bool:
        if not request.url.path.endswith(self.path_suffix):
            return False
        self.bodies.append(request.content)
        if self.remaining == 0:
            return False
        self.remaining -= 1
        return True

    def fake(self, request: httpx.Request) -> httpx.Response:
        assert self.status is not None
        return httpx.Response(self.status, headers={"Retry-After": "0"}, request=request)

    @staticmethod
    def lost(request: httpx.Request) -> httpx.RemoteProtocolError:
        return httpx.RemoteProtocolError("server disconnected before answering", request=request)


class LossyTransport(httpx.HTTPTransport):
    """Sends to the real server; loses the answers `LosesAnswers` picks."""

    def __init__(self, loses: LosesAnswers) -> None:
        super().__init__()
        self.loses = loses

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if not self.loses.intercepts(request):
            return super().handle_request(request)
        if self.loses.status is not None:
            return self.loses.fake(request)
        answer = super().handle_request(request)
        answer.read()  # the server handled it; the client never sees this answer
        answer.close()
        raise self.loses.lost(request)


class AsyncLossyTransport(httpx.AsyncHTTPTransport):
    """`LossyTransport` for `AsyncClient`."""

    def __init__(self, loses: LosesAnswers) -> None:
        super().__init__()
        self.loses = loses

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if not self.loses.intercepts(request):
            return await super().handle_async_request(request)
        if self.loses.status is not None:
            return self.loses.fake(request)
        answer = await super().handle_async_request(request)
        await answer.aread()
        await answer.aclose()
        raise self.loses.lost(request)
