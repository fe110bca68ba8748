"""The catalog in force: recorded by `serve`, checked by every write that names a plan, a
model or the currency.

Catalog A is the one `serve` runs; catalog B is another process's file: same free plan, pro
at another price, a `gold` plan and a model `m3` that A lacks, and no `basic`.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from tollhouse.catalog import Catalog, NotInCatalogInForce, PlansInUseMissing, load_catalog_text
from tollhouse.catalog import service as catalogs
from tollhouse.catalog.models import ServedCatalog
from tollhouse.clock import FrozenClock
from tollhouse.customers import Customer
from tollhouse.storage import Database
from tollhouse.subscriptions import service as subscriptions

CATALOG_A = """
version: "a-1"
plans:
  free: {rank: 0, included_credits: "1.00"}
  basic: {rank: 10, price: "9.00"}
  pro: {rank: 20, price: "29.00"}
categories: {text: {requests_per_minute: 10}}
upstreams: {local: {base_url: "http://127.0.0.1:9/v1"}}
models:
  m1: {category: text, upstream: local}
  m2: {category: text, upstream: local}
"""
CATALOG_B = """
version: "b-7"
plans:
  free: {rank: 0, included_credits: "1.00"}
  pro: {rank: 20, price: "49.00"}
  gold: {rank: 30, price: "99.00"}
categories: {text: {requests_per_minute: 10}}
upstreams: {local: {base_url: "http://127.0.0.1:9/v1"}}
models:
  m1: {category: text, upstream: local}
  m3: {category: text, upstream: local}
"""


def catalog(text: str, source: str, **replace: str) -> Catalog:
    for old, new in replace.items():
        text = text.replace(old, new)
    return load_catalog_text(text, source=source)


@pytest.fixture
def served() -> Catalog:
    return catalog(CATALOG_A, "/srv/a/tollhouse.yaml")


@pytest.fixture
def other() -> Catalog:
    return catalog(CATALOG_B, "/home/ada/tollhouse.yaml")


async def record(db: Database, served: Catalog, clock: FrozenClock) -> ServedCatalog:
    async with db.transaction() as session:
        in_use = await subscriptions.plans_in_use(session)
        return await catalogs.record_served(session, served, plans_in_use=in_use, clock=clock)


async def require(db: Database, running: Catalog, **names: Any) -> None:
    async with db.transaction() as session:
        await catalogs.require_in_force(session, running, **names)


async def rows(db: Database) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(select(func.count()).select_from(ServedCatalog)) or 0)


class TestNoRecord:
    async def test_nothing_is_refused_before_serve_records_a_catalog(
        self, sqlite_db: Database, other: Catalog
    ) -> None:
        await require(sqlite_db, other, plans=["gold"], models=["m3"], currency=True)

        async with sqlite_db.transaction() as session:
            assert await catalogs.in_force(session) is None


class TestRecordServed:
    async def test_records_digest_source_version_terms_and_time(
        self, sqlite_db: Database, served: Catalog, clock: FrozenClock
    ) -> None:
        await record(sqlite_db, served, clock)

        async with sqlite_db.transaction() as session:
            row = await catalogs.in_force(session)
        assert row is not None
        assert (row.digest, row.source, row.version) == (served.digest, served.source, "a-1")
        assert len(row.digest) == 64
        assert row.recorded_at == clock.now()
        assert row.terms["models"] == ["m1", "m2"]
        assert row.terms["plans"]["basic"]["price_micros"] == 9_000_000
        assert row.terms["currency"] == "usd"

    async def test_serving_the_same_catalog_again_adds_no_row(
        self, sqlite_db: Database, served: Catalog, clock: FrozenClock
    ) -> None:
        first = await record(sqlite_db, served, clock)

        again = await record(sqlite_db, served, clock)

        assert again.id == first.id
        assert await rows(sqlite_db) == 1

    async def test_another_catalog_becomes_the_one_in_force(
        self, sqlite_db: Database, served: Catalog, other: Catalog, clock: FrozenClock
    ) -> None:
        await record(sqlite_db, served, clock)

        await record(sqlite_db, other, clock)

        async with sqlite_db.transaction() as session:
            row = await catalogs.in_force(session)
        assert row is not None and row.digest == other.digest
        assert await rows(sqlite_db) == 2

    async def test_a_catalog_lacking_a_customers_plan_is_refused(
        self, sqlite_db: Database, served: Catalog, other: Catalog, clock: FrozenClock
    ) -> None:
        await record(sqlite_db, served, clock)
        async with sqlite_db.transaction() as session:
            await subscriptions.create_customer(
                session, name="Ada", plan="basic", catalog=served, clock=clock
            )

        with pytest.raises(PlansInUseMissing) as caught:
            await record(sqlite_db, other, clock)

        assert caught.value.extra["plans"] == ["basic"]
        assert "catalog /home/ada/tollhouse.yaml (version b-7, sha256" in caught.value.detail
        assert "catalog /srv/a/tollhouse.yaml (version a-1, sha256" in caught.value.detail
        assert await rows(sqlite_db) == 1

    async def test_a_catalog_lacking_a_scheduled_plan_is_refused(
        self, sqlite_db: Database, served: Catalog, other: Catalog, clock: FrozenClock
    ) -> None:
        await record(sqlite_db, served, clock)
        async with sqlite_db.transaction() as session:
            customer = await subscriptions.create_customer(
                session, name="Ada", plan="pro", catalog=served, clock=clock
            )
            change = await subscriptions.change_plan(
                session, customer.id, "basic", catalog=served, clock=clock
            )
        assert (change.kind, change.subscription.scheduled_plan) == ("downgrade_scheduled", "basic")

        with pytest.raises(PlansInUseMissing) as caught:
            await record(sqlite_db, other, clock)

        assert caught.value.extra["plans"] == ["basic"]

    async def test_a_first_catalog_lacking_a_plan_in_use_is_refused(
        self, sqlite_db: Database, served: Catalog, other: Catalog, clock: FrozenClock
    ) -> None:
        async with sqlite_db.transaction() as session:  # created before any serve
            await subscriptions.create_customer(
                session, name="Ada", plan="basic", catalog=served, clock=clock
            )

        with pytest.raises(PlansInUseMissing) as caught:
            await record(sqlite_db, other, clock)

        assert caught.value.extra["catalog_in_force"] is None
        assert "none was recorded" in caught.value.detail


class TestRequireInForce:
    @pytest.fixture(autouse=True)
    async def served_a(self, sqlite_db: Database, served: Catalog, clock: FrozenClock) -> None:
        await record(sqlite_db, served, clock)

    async def test_the_catalog_in_force_may_write_anything_it_has(
        self, sqlite_db: Database, served: Catalog
    ) -> None:
        await require(sqlite_db, served, plans=["basic", "pro"], models=["m2"], currency=True)

    async def test_a_plan_missing_from_the_catalog_in_force_is_refused_naming_both(
        self, sqlite_db: Database, other: Catalog, served: Catalog
    ) -> None:
        with pytest.raises(NotInCatalogInForce) as caught:
            await require(sqlite_db, other, plans=["gold"])

        error = caught.value
        assert (error.status, error.code) == (409, "not-in-catalog-in-force")
        assert error.detail.startswith("plan 'gold' is not in the catalog in force: ")
        assert f"catalog /home/ada/tollhouse.yaml (version b-7, sha256 {other.digest[:12]})" in (
            error.detail
        )
        assert f"catalog /srv/a/tollhouse.yaml (version a-1, sha256 {served.digest[:12]})" in (
            error.detail
        )
        assert error.extra["missing"] == {"plans": ["gold"], "models": [], "currency": None}
        assert error.extra["catalog"] == other.describe()
        assert error.extra["catalog_in_force"] == served.describe()

    async def test_a_plan_with_other_terms_is_refused_saying_which(
        self, sqlite_db: Database, other: Catalog
    ) -> None:
        with pytest.raises(NotInCatalogInForce) as caught:
            await require(sqlite_db, other, plans=["pro"])

        assert "plan 'pro' has other terms in the catalog in force" in caught.value.detail
        assert "price_micros 29000000 there, 49000000 here" in caught.value.detail

    async def test_a_plan_with_the_same_terms_passes(
        self, sqlite_db: Database, other: Catalog
    ) -> None:
        await require(sqlite_db, other, plans=["free"], models=["m1"], currency=True)

    async def test_a_model_missing_from_the_catalog_in_force_is_refused(
        self, sqlite_db: Database, other: Catalog
    ) -> None:
        with pytest.raises(NotInCatalogInForce) as caught:
            await require(sqlite_db, other, models=["m1", "m3"])

        assert caught.value.extra["missing"]["models"] == ["m3"]

    async def test_another_currency_is_refused(self, sqlite_db: Database) -> None:
        euros = catalog(
            CATALOG_B, "/home/ada/eur.yaml", **{'version: "b-7"': "currency: eur\nversion: x"}
        )

        with pytest.raises(NotInCatalogInForce) as caught:
            await require(sqlite_db, euros, currency=True)

        assert caught.value.extra["missing"]["currency"] == "usd"

    async def test_creating_a_customer_on_a_missing_plan_writes_nothing(
        self, sqlite_db: Database, other: Catalog, clock: FrozenClock
    ) -> None:
        with pytest.raises(NotInCatalogInForce):
            async with sqlite_db.transaction() as session:
                await subscriptions.create_customer(
                    session, name="Ada", plan="gold", catalog=other, clock=clock
                )

        async with sqlite_db.transaction() as session:
            assert await session.scalar(select(func.count()).select_from(Customer)) == 0

    async def test_changing_or_canceling_onto_a_missing_plan_is_refused(
        self, sqlite_db: Database, served: Catalog, clock: FrozenClock
    ) -> None:
        async with sqlite_db.transaction() as session:
            customer = await subscriptions.create_customer(
                session, name="Ada", plan="pro", catalog=served, clock=clock
            )
        cheaper_default = catalog(
            CATALOG_A, "/home/ada/a.yaml", **{'included_credits: "1.00"': 'included_credits: "0"'}
        )

        with pytest.raises(NotInCatalogInForce, match="plan 'free' has other terms"):
            async with sqlite_db.transaction() as session:
                await subscriptions.cancel(
                    session, customer.id, at_period_end=False, catalog=cheaper_default, clock=clock
                )
        with pytest.raises(NotInCatalogInForce, match="plan 'free' has other terms"):
            async with sqlite_db.transaction() as session:
                await subscriptions.change_plan(
                    session, customer.id, "free", catalog=cheaper_default, clock=clock
                )
        async with sqlite_db.transaction() as session:
            sub = await subscriptions.get_subscription(session, customer.id)
        assert (sub.plan, sub.status, sub.scheduled_plan) == ("pro", "active", None)
