"""Session fixtures: a catalog with two products, a started ledger on each store, and a
customer with $10 in the wallet.

`day` costs $1.00 for 24 h or 1,000 tokens (packs: 5 for $4.50, 20 for $16.00); `hour`
costs $0.25 for an hour, no token cap, no packs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tollhouse.catalog import Catalog, load_catalog_text
from tollhouse.clock import FrozenClock
from tollhouse.customers import service as customers
from tollhouse.ledger import Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.storage import Database

CATALOG_TEXT = """
version: "sessions-test"
plans: {free: {rank: 0}}
categories: {text: {requests_per_minute: 10}}
upstreams: {up: {base_url: "http://127.0.0.1:9"}}
models: {chat: {category: text, upstream: up}}
session_products:
  day:
    price: "1.00"
    duration: 86400
    max_tokens: 1000
    models: [chat]
    packs: [{sessions: 5, price: "4.50"}, {sessions: 20, price: "16.00"}]
  hour: {price: "0.25", duration: 3600, categories: [text]}
"""
WALLET_MICROS = 10_000_000

NewCustomer = Callable[[], Awaitable[str]]
Balance = Callable[[str], Awaitable[int]]


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog_text(CATALOG_TEXT)


@pytest.fixture
async def ledger(db: Database, clock: FrozenClock) -> AsyncIterator[Ledger]:
    async with Ledger(db, clock=clock) as started:
        yield started


@pytest.fixture
def new_customer(db: Database, ledger: Ledger, clock: FrozenClock) -> NewCustomer:
    """Create a customer with `WALLET_MICROS` of credits; returns its id."""

    async def create() -> str:
        async with db.transaction() as session:
            customer = await customers.create(session, name="Ada", clock=clock)
        await ledger.grant(customer.id, WALLET_MICROS, idempotency_key=f"seed-{customer.id}")
        return customer.id

    return create


@pytest.fixture
def balance(db: Database, clock: FrozenClock) -> Balance:
    """The customer's available micros."""

    async def read(customer_id: str) -> int:
        async with db.transaction() as session:
            wallet = await ledger_service.balance(session, customer_id, now=clock.now())
        return wallet.available_micros

    return read
