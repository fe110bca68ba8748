"""Billing fixtures: a catalog with round prices, a started ledger on each store, customers
subscribed through the subscriptions service, and a `Billing` helper that runs the period
close as `Runtime.sweep` does (rollover, credits, close) and reads invoices back.

Plans (dollars): free $0 ($1 included); basic $9/month ($5 included); pro $29/month. The
`day` session product costs $1.00 (packs: 5 for $4.50). Customers are created on
2026-03-15 12:00 UTC (the `clock` fixture): their first period ends on April 15 at midnight
UTC, the next ones run from midnight on the 15th.
Tax: Germany 19 %.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tollhouse.billing import BillingTerms, CloseReport, InvoiceView
from tollhouse.billing import service as billing
from tollhouse.catalog import Catalog, load_catalog_text
from tollhouse.clock import FrozenClock
from tollhouse.customers import service as customers
from tollhouse.ledger import Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.sessions import service as sessions
from tollhouse.storage import Database
from tollhouse.subscriptions import service as subscriptions

CATALOG_TEXT = """
version: "billing-test"
default_plan: free
plans:
  free: {rank: 0, included_credits: "1.00"}
  basic: {rank: 10, price: "9.00", included_credits: "5.00"}
  pro: {rank: 20, price: "29.00"}
categories: {text: {requests_per_minute: 10}}
upstreams: {up: {base_url: "http://127.0.0.1:9"}}
models: {chat: {category: text, upstream: up}}
session_products:
  day:
    price: "1.00"
    duration: 86400
    models: [chat]
    packs: [{sessions: 5, price: "4.50"}]
"""
DOLLAR = 1_000_000
BASIC_MICROS = 9 * DOLLAR
PRO_MICROS = 29 * DOLLAR
SESSION_MICROS = DOLLAR
PACK_MICROS = 4_500_000
MARCH_15 = datetime(2026, 3, 15, 12, 0, tzinfo=UTC)
APRIL_15 = datetime(2026, 4, 15, tzinfo=UTC)
MAY_15 = datetime(2026, 5, 15, tzinfo=UTC)
TERMS = BillingTerms(tax_rates={"DE": Decimal("0.19")}, issuer="Tollhouse Test GmbH")


@pytest.fixture
def catalog() -> Catalog:
    return load_catalog_text(CATALOG_TEXT, source="billing-test.yaml")


@pytest.fixture
async def ledger(db: Database, clock: FrozenClock) -> AsyncIterator[Ledger]:
    async with Ledger(db, clock=clock) as started:
        yield started


@dataclass
class Billing:
    """A database with customers, and the period close as the server runs it."""

    db: Database
    ledger: Ledger
    catalog: Catalog
    clock: FrozenClock
    terms: BillingTerms = TERMS

    async def customer(
        self, plan: str = "basic", *, country: str | None = None, wallet_micros: int = 0
    ) -> str:
        """A subscribed customer (a payment method on file), its credits delivered."""
        async with self.db.transaction() as session:
            customer = await subscriptions.create_customer(
                session, name="Ada", email="ada@example.com", plan=plan,
                catalog=self.catalog, clock=self.clock,
            )  # fmt: skip
            await subscriptions.set_payment_method(
                session, customer.id, True, catalog=self.catalog, clock=self.clock
            )
            await customers.set_country(session, customer.id, country)
        await subscriptions.deliver_grants(self.db, ledger=self.ledger, clock=self.clock)
        if wallet_micros:
            await self.ledger.grant(
                customer.id, wallet_micros, idempotency_key=f"seed-{customer.id}"
            )
        return customer.id

    async def close(self, db: Database | None = None, ledger: Ledger | None = None) -> CloseReport:
        """What `Runtime.close_periods` does, on `db` (default: this one)."""
        on = db or self.db
        await subscriptions.roll_over(
            on, catalog=self.catalog, clock=self.clock, ledger=ledger or self.ledger
        )
        return await billing.close_periods(
            on, catalog=self.catalog, terms=self.terms, clock=self.clock
        )

    async def invoices(self, customer_id: str | None = None) -> list[InvoiceView]:
        """Invoices (and credit notes), oldest first."""
        async with self.db.sessions() as session:
            found = await billing.list_invoices(session, customer_id=customer_id, limit=500)
        return list(reversed(found))

    async def session_fee(self, customer_id: str, key: str) -> str:
        """Start a `day` session paid from the wallet; its hold's id."""
        started = await sessions.start(
            self.db, self.ledger, catalog=self.catalog, clock=self.clock,
            customer_id=customer_id, product="day", idempotency_key=key,
        )  # fmt: skip
        assert started.session.hold_id is not None
        return started.session.hold_id

    async def pack(self, customer_id: str, key: str) -> str:
        """Buy a pack of 5 `day` sessions; its hold's id."""
        bought = await sessions.buy_pack(
            self.db, self.ledger, catalog=self.catalog, clock=self.clock,
            customer_id=customer_id, product="day", sessions=5, idempotency_key=key,
        )  # fmt: skip
        return bought.pack.hold_id

    async def available(self, customer_id: str) -> int:
        async with self.db.sessions() as session:
            wallet = await ledger_service.balance(session, customer_id, now=self.clock.now())
        return wallet.available_micros


@pytest.fixture
def books(db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock) -> Billing:
    return Billing(db, ledger, catalog, clock)
