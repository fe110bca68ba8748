"""Payments fixtures: a catalog with credit packs, a session pack and paid plans, a started
ledger on each store, the local Stripe server, and `Payments` configured to use it.

Packs: `pack-10` ($10 buys $10), `pack-50` ($50 buys $55, the $5 bonus expires after 90
days), `pack-100` ($100 buys $115). Plans: `free`, `pro` ($29 a month, $2 included),
`lifetime` ($499 once).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest
from tests.support.stripe import API_KEY, WEBHOOK_SECRET, FakeStripe, event, sign

from tollhouse.catalog import Catalog, load_catalog_text
from tollhouse.clock import FrozenClock
from tollhouse.events import service as events
from tollhouse.ledger import Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.payments import Payments, StripeSettings, WebhookOutcome
from tollhouse.storage import Database
from tollhouse.subscriptions import service as subscriptions

CATALOG_TEXT = """
version: "payments-test"
plans:
  free: {rank: 0}
  pro: {rank: 10, price: "29.00", included_credits: "2.00"}
  lifetime: {rank: 20, price: "499.00", interval: once}
categories: {text: {requests_per_minute: 10}}
upstreams: {up: {base_url: "http://127.0.0.1:9"}}
models: {chat: {category: text, upstream: up}}
session_products:
  day:
    price: "1.00"
    duration: 86400
    models: [chat]
    packs: [{sessions: 5, price: "4.50"}]
credit_packs:
  pack-10: {price: "10.00"}
  pack-50: {price: "50.00", bonus: "5.00", bonus_expiry_days: 90}
  pack-100: {price: "100.00", bonus: "15.00", bonus_expiry_days: 90}
"""

NewCustomer = Callable[..., Awaitable[str]]
Deliver = Callable[..., Awaitable[WebhookOutcome]]


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog_text(CATALOG_TEXT)


@pytest.fixture
async def ledger(db: Database, clock: FrozenClock) -> AsyncIterator[Ledger]:
    async with Ledger(db, clock=clock) as started:
        yield started


@pytest.fixture
async def stripe_server() -> AsyncIterator[FakeStripe]:
    server = FakeStripe()
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def payments(
    db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock, stripe_server: FakeStripe
) -> AsyncIterator[Payments]:
    """Payments on Stripe's local stand-in, watching the ledger's holds."""
    settings = StripeSettings(API_KEY, WEBHOOK_SECRET, api_base=stripe_server.base_url)
    started = Payments(db, ledger, catalog=catalog, clock=clock, stripe=settings)
    await started.start()
    ledger.watch_holds(started.observe)
    yield started
    ledger.unwatch_holds(started.observe)
    await started.stop()


@pytest.fixture
def new_customer(db: Database, catalog: Catalog, clock: FrozenClock) -> NewCustomer:
    """A customer subscribed to `plan` (default free); returns its id."""

    async def create(plan: str = "free") -> str:
        async with db.transaction() as session:
            customer = await subscriptions.create_customer(
                session, name="Ada", email="ada@example.com", plan=plan, catalog=catalog,
                clock=clock,
            )  # fmt: skip
        return customer.id

    return create


@pytest.fixture
def deliver(payments: Payments) -> Deliver:
    """Deliver a Stripe event (its payload, or a type and object) signed as Stripe signs."""

    async def send(payload: str) -> WebhookOutcome:
        return await payments.handle_stripe_webhook(payload.encode(), sign(payload))

    return send


@dataclass
class Wallet:
    available_micros: int
    grants: list[tuple[int, str, int]]
    """(remaining, source, priority) per live lot, in spend order."""


async def wallet(db: Database, customer_id: str, clock: FrozenClock) -> Wallet:
    async with db.transaction() as session:
        balance = await ledger_service.balance(session, customer_id, now=clock.now())
    return Wallet(
        balance.available_micros, [(g.remaining, g.source, g.priority) for g in balance.grants]
    )


async def event_types(db: Database, customer_id: str) -> list[str]:
    """The customer's outbox events' types, oldest first."""
    async with db.transaction() as session:
        page = await events.list_events(session, customer_id=customer_id, limit=1000)
    return [e.type for e in page.events]


__all__ = ["Wallet", "event", "event_types", "sign", "wallet"]
