"""Subscription fixtures: a small catalog with round numbers, a started ledger, and helpers
that create a subscribed customer and read grants, charges and history.

Plans (dollars): free $0 ($1 included, api_calls cap 3, storage_bytes cap 1000);
basic $9/month, no trial ($5 included); pro $29/month, 7-day trial ($20 included, unused
credits roll over up to $8); lifetime $999 once ($100 included once).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from sqlalchemy import select

from tollhouse.catalog import Catalog, load_catalog_text
from tollhouse.clock import FrozenClock
from tollhouse.customers import service as customers
from tollhouse.ledger import GrantView, Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.storage import Database
from tollhouse.subscriptions import (
    SubscriptionCharge,
    SubscriptionHistory,
    deliver_grants,
    ensure_subscription,
    set_payment_method,
)

CATALOG_TEXT = """
version: "sub-test"
default_plan: free
plans:
  free:
    rank: 0
    included_credits: "1.00"
    quotas: {api_calls: 3, storage_bytes: 1000}
    resource_tiers: [small]
    session_rates: {small: "0.075"}
  basic:
    rank: 10
    price: "9.00"
    included_credits: "5.00"
    quotas: {api_calls: 100}
    features: [batch_generation]
    resource_tiers: [small, medium]
  pro:
    rank: 20
    price: "29.00"
    trial_days: 7
    included_credits: "20.00"
    rollover: {cap: "8.00"}
    features: [batch_generation, lora_training]
    resource_tiers: [small, medium, large]
  lifetime:
    rank: 30
    price: "999.00"
    interval: once
    included_credits: "100.00"
    rate_limit_multiplier: null
categories:
  text: {requests_per_minute: 10}
upstreams:
  local: {base_url: "http://127.0.0.1:9/v1"}
models:
  small-model: {category: text, upstream: local}
  big-model: {category: text, upstream: local, min_plan: pro}
"""

DOLLAR = 1_000_000

NewCustomer = Callable[..., Awaitable[str]]
Grants = Callable[[str], Awaitable[list[GrantView]]]
Charges = Callable[[str], Awaitable[list[SubscriptionCharge]]]
History = Callable[[str], Awaitable[list[SubscriptionHistory]]]


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog_text(CATALOG_TEXT, source="sub-test.yaml")


@pytest.fixture
async def ledger(sqlite_db: Database, clock: FrozenClock) -> AsyncIterator[Ledger]:
    async with Ledger(sqlite_db, clock=clock) as started:
        yield started


@pytest.fixture
def new_customer(
    sqlite_db: Database, catalog: Catalog, clock: FrozenClock, ledger: Ledger
) -> NewCustomer:
    """`await new_customer(plan=None, timezone="UTC", payment=False)` -> customer id, with a
    subscription (committed) and its owed credits delivered."""

    async def create(
        plan: str | None = None, *, timezone: str = "UTC", payment: bool = False
    ) -> str:
        async with sqlite_db.transaction() as session:
            customer = await customers.create(session, name="Ada", clock=clock)
            await ensure_subscription(
                session, customer.id, catalog=catalog, clock=clock, timezone=timezone, plan=plan
            )
            if payment:
                await set_payment_method(session, customer.id, True, catalog=catalog, clock=clock)
        await deliver_grants(sqlite_db, ledger=ledger, clock=clock)
        return customer.id

    return create


@pytest.fixture
def grants(sqlite_db: Database) -> Grants:
    """Every ledger grant of the customer, oldest first."""

    async def read(customer_id: str) -> list[GrantView]:
        async with sqlite_db.sessions() as session:
            found = await ledger_service.list_grants(session, customer_id)
        return sorted(found, key=lambda g: (g.created_at, g.id))

    return read


@pytest.fixture
def charges(sqlite_db: Database) -> Charges:
    async def read(customer_id: str) -> list[SubscriptionCharge]:
        async with sqlite_db.sessions() as session:
            query = (
                select(SubscriptionCharge)
                .where(SubscriptionCharge.customer_id == customer_id)
                .order_by(SubscriptionCharge.id)
            )
            return list(await session.scalars(query))

    return read


@pytest.fixture
def events(sqlite_db: Database) -> History:
    """The customer's history rows, oldest first."""

    async def read(customer_id: str) -> list[SubscriptionHistory]:
        async with sqlite_db.sessions() as session:
            query = (
                select(SubscriptionHistory)
                .where(SubscriptionHistory.customer_id == customer_id)
                .order_by(SubscriptionHistory.id)
            )
            return list(await session.scalars(query))

    return read
