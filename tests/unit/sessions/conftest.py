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


METERED_CATALOG_TEXT = """
version: "metered-test"
plans:
  free: {rank: 0, resource_tiers: [small], session_rates: {small: "0.05"}}
  pro:
    rank: 10
    resource_tiers: [small, medium, large]
    session_rates: {small: "0.075", medium: "0.15", large: "0.60"}
  enterprise:
    rank: 20
    resource_tiers: [small, medium, large, xlarge]
    session_rates: {small: "0.01", medium: "0.02", large: "0.10", xlarge: "1.00"}
  operator:
    rank: 30
    resource_tiers: [small, medium, large, xlarge]
    session_rates: {small: "0", medium: "0", large: "0", xlarge: "0"}
  unpriced: {rank: 40, resource_tiers: [small]}
categories: {text: {requests_per_minute: 10}}
upstreams: {up: {base_url: "http://127.0.0.1:9"}}
models: {chat: {category: text, upstream: up}}
session_products:
  hour: {price: "0.25", duration: 3600, categories: [text]}
compute_sessions: {min_run: 900, slice: 300, low_credit_slices: 2}
"""
"""Rates per hour as in the issue: free $0.05, pro $0.075, enterprise $0.01, operators free.
A start holds 15 minutes, each further slice 5; heartbeats are not required."""

NewPlanCustomer = Callable[..., Awaitable[str]]


@pytest.fixture
def metered_catalog() -> Catalog:
    return load_catalog_text(METERED_CATALOG_TEXT)


@pytest.fixture
def plan_customer(db: Database, ledger: Ledger, clock: FrozenClock) -> NewPlanCustomer:
    """Create a customer on `plan` with `micros` of credits (none when 0); returns its id."""

    async def create(plan: str = "pro", micros: int = WALLET_MICROS) -> str:
        async with db.transaction() as session:
            customer = await customers.create(session, name="Grace", plan=plan, clock=clock)
        if micros:
            await ledger.grant(customer.id, micros, idempotency_key=f"seed-{customer.id}")
        return customer.id

    return create
