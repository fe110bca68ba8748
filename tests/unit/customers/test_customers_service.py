"""Customer service: create, read, page, uniqueness of external_id."""

from __future__ import annotations

import pytest

from tollhouse.clock import FrozenClock
from tollhouse.customers import Customer, CustomerExists, CustomerNotFound
from tollhouse.customers import service as customers
from tollhouse.errors import Conflict, InvalidInput, NotFound
from tollhouse.storage import Database


async def make(
    db: Database, clock: FrozenClock, count: int, *, step_seconds: float = 1
) -> list[str]:
    ids = []
    async with db.transaction() as session:
        for number in range(count):
            customer = await customers.create(session, name=f"c{number}", clock=clock)
            ids.append(customer.id)
            clock.advance(step_seconds)
    return ids


class TestCreate:
    async def test_create_assigns_id_defaults_and_time(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        async with sqlite_db.transaction() as session:
            customer = await customers.create(session, name="  Acme Ltd ", clock=clock)
        assert customer.id.startswith("cus_") and len(customer.id) == 26
        assert customer.name == "Acme Ltd"
        assert customer.plan == "free"
        assert customer.email is None and customer.external_id is None
        assert customer.metadata_ == {}
        assert customer.created_at == clock.now()

    async def test_created_customer_reads_back(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        async with sqlite_db.transaction() as session:
            created = await customers.create(
                session,
                name="Acme",
                email="billing@acme.test",
                external_id="user-42",
                plan="pro",
                metadata={"region": "eu", "seats": 3},
                clock=clock,
            )
        async with sqlite_db.sessions() as session:
            customer = await customers.get(session, created.id)
            by_external = await customers.get_by_external_id(session, "user-42")
        assert by_external.id == customer.id == created.id
        assert (customer.name, customer.email, customer.plan) == (
            "Acme",
            "billing@acme.test",
            "pro",
        )
        assert customer.metadata_ == {"region": "eu", "seats": 3}
        assert customer.created_at == clock.now()

    async def test_duplicate_external_id_raises_customer_exists(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        async with sqlite_db.transaction() as session:
            await customers.create(session, name="A", external_id="user-1", clock=clock)
            with pytest.raises(CustomerExists) as caught:
                await customers.create(session, name="B", external_id="user-1", clock=clock)
            assert isinstance(caught.value, Conflict)
            assert (caught.value.status, caught.value.code) == (409, "customer-exists")
            # the transaction is still usable
            await customers.create(session, name="C", external_id="user-2", clock=clock)
        async with sqlite_db.sessions() as session:
            assert len(await customers.list_customers(session)) == 2

    async def test_customers_without_external_id_do_not_conflict(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        assert len(set(await make(sqlite_db, clock, 3))) == 3

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"name": ""},
            {"name": "x" * 201},
            {"name": "ok", "email": "not-an-email"},
            {"name": "ok", "plan": " "},
            {"name": "ok", "external_id": ""},
        ],
    )
    async def test_invalid_fields_raise_invalid_input(
        self, sqlite_db: Database, clock: FrozenClock, kwargs: dict[str, str]
    ) -> None:
        async with sqlite_db.transaction() as session:
            with pytest.raises(InvalidInput) as caught:
                await customers.create(session, clock=clock, **kwargs)  # type: ignore[arg-type]
        assert caught.value.extra["errors"][0]["loc"] in kwargs


class TestGet:
    async def test_unknown_id_raises_customer_not_found(self, sqlite_db: Database) -> None:
        async with sqlite_db.sessions() as session:
            with pytest.raises(CustomerNotFound) as caught:
                await customers.get(session, "cus_missing")
            with pytest.raises(CustomerNotFound):
                await customers.get_by_external_id(session, "nobody")
        assert isinstance(caught.value, NotFound)
        assert (caught.value.status, caught.value.code) == (404, "customer-not-found")

    async def test_set_plan_changes_the_plan(self, sqlite_db: Database, clock: FrozenClock) -> None:
        [customer_id] = await make(sqlite_db, clock, 1)
        async with sqlite_db.transaction() as session:
            await customers.set_plan(session, customer_id, "basic")
        async with sqlite_db.sessions() as session:
            customer: Customer = await customers.get(session, customer_id)
        assert customer.plan == "basic"


class TestList:
    @pytest.mark.parametrize("step_seconds", [1, 0], ids=["distinct-times", "same-time"])
    async def test_pages_cover_every_customer_once_in_order(
        self, sqlite_db: Database, clock: FrozenClock, step_seconds: float
    ) -> None:
        created = await make(sqlite_db, clock, 7, step_seconds=step_seconds)
        expected = created if step_seconds else sorted(created)
        seen: list[str] = []
        pages = 0
        after: str | None = None
        async with sqlite_db.sessions() as session:
            while True:
                page = await customers.list_customers(session, limit=3, after=after)
                if not page:
                    break
                pages += 1
                seen.extend(c.id for c in page)
                after = page[-1].id
        assert seen == expected
        assert pages == 3

    async def test_unknown_cursor_raises_not_found(self, sqlite_db: Database) -> None:
        async with sqlite_db.sessions() as session:
            with pytest.raises(CustomerNotFound):
                await customers.list_customers(session, after="cus_missing")

    @pytest.mark.parametrize("limit", [0, -1, 1001])
    async def test_limit_out_of_range_raises(self, sqlite_db: Database, limit: int) -> None:
        async with sqlite_db.sessions() as session:
            with pytest.raises(InvalidInput):
                await customers.list_customers(session, limit=limit)
