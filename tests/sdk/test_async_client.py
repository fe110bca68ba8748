"""`tollhouse.AsyncClient` against a live `tollhouse serve`: the story of `test_client.py`,
awaited, with the lists iterated by `async for`."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from tests.sdk.conftest import GRANT_MICROS, Server
from tests.support.catalog import IMAGE_MICROS, SESSION_PRICE_MICROS

from tollhouse import AsyncClient, NotFoundError, PaymentRequiredError, UnprocessableEntityError
from tollhouse.sdk import AsyncPage


@pytest.fixture
async def client(server: Server) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(base_url=server.base_url, api_key=server.operator_key) as client:
        yield client


async def test_customer_key_grant_hold_and_session(client: AsyncClient, server: Server) -> None:
    customer = await client.customers.create(name="Ada")
    key = await client.keys.create(customer.id, name="worker")
    await client.credits.grant(customer.id, amount_micros=GRANT_MICROS)

    async with AsyncClient(base_url=server.base_url, api_key=key.key) as own:
        authorized = await own.holds.authorize(model="test-image", usage={"images": 3})
        assert authorized.hold is not None
        captured = await own.holds.capture(authorized.hold.id, amount_micros=IMAGE_MICROS)
        started = await own.sessions.start(product="analysis")
        stopped = await own.sessions.terminate(started.id)
        balance = await own.credits.balance("me")

    assert authorized.hold.amount_micros == 3 * IMAGE_MICROS
    assert captured.captured_micros == IMAGE_MICROS
    assert (started.status, stopped.status) == ("active", "ended")
    assert balance.held_micros == 0
    assert balance.available_micros == GRANT_MICROS - IMAGE_MICROS - SESSION_PRICE_MICROS


async def test_lists_iterate_past_the_first_page(client: AsyncClient) -> None:
    customer = await client.customers.create(name="Pages")
    for _ in range(5):
        await client.credits.grant(customer.id, amount_micros=1)

    pages = client.credits.transactions(customer.id, limit=2)
    entries = [entry async for entry in pages]
    customers = [c.id async for c in client.customers.list(limit=2)]

    assert isinstance(pages, AsyncPage)
    assert len(entries) == 5 and len({e.id for e in entries}) == 5
    assert customer.id in customers and customers == sorted(set(customers))


async def test_errors_map_to_their_exceptions(client: AsyncClient) -> None:
    broke = await client.customers.create(name="Broke")

    with pytest.raises(NotFoundError) as missing:
        await client.holds.retrieve("hold_nothing")
    with pytest.raises(PaymentRequiredError) as unpaid:
        await client.sessions.start(product="analysis", customer_id=broke.id)
    await client.credits.grant(broke.id, amount_micros=1, idempotency_key="k")
    with pytest.raises(UnprocessableEntityError) as reused:
        await client.credits.grant(broke.id, amount_micros=3, idempotency_key="k")

    assert missing.value.code == "hold-not-found"
    assert unpaid.value.type == "https://tollhouse.dev/problems/insufficient-credit"
    assert reused.value.status == 422 and reused.value.code == "idempotency-key-reused"
