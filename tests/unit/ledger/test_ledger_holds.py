"""Holds: spend order, escrow, insufficient credit stores nothing, idempotency."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from tollhouse.clock import FrozenClock
from tollhouse.ledger import IdempotencyKeyReused, InsufficientCredit, Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.ledger.models import accounts_table
from tollhouse.storage import Database

from .conftest import Check, Counts, History, Wallet

ONE_DOLLAR = 1_000_000


class TestSpendOrder:
    async def test_expiring_lots_are_spent_first_soonest_first(
        self, ledger: Ledger, wallet: Wallet, clock: FrozenClock, consistent: Check
    ) -> None:
        forever = await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="forever")
        in_30d = await ledger.grant(
            "cus_a", ONE_DOLLAR, idempotency_key="30d", expires_at=clock.now() + timedelta(days=30)
        )
        in_1d = await ledger.grant(
            "cus_a", ONE_DOLLAR, idempotency_key="1d", expires_at=clock.now() + timedelta(days=1)
        )

        await ledger.hold("cus_a", 1_500_000)

        remaining = {g.id: g.remaining for g in (await wallet("cus_a")).grants}
        assert in_1d.id not in remaining  # spent out
        assert remaining == {in_30d.id: 500_000, forever.id: ONE_DOLLAR}
        await consistent()

    async def test_equal_expiry_spends_lower_priority_first_then_oldest(
        self, ledger: Ledger, wallet: Wallet, clock: FrozenClock
    ) -> None:
        expiry = clock.now() + timedelta(days=7)
        oldest = await ledger.grant(
            "cus_a", ONE_DOLLAR, idempotency_key="old", expires_at=expiry, priority=5
        )
        clock.advance(1)
        urgent = await ledger.grant(
            "cus_a", ONE_DOLLAR, idempotency_key="urgent", expires_at=expiry, priority=1
        )
        clock.advance(1)
        newer = await ledger.grant(
            "cus_a", ONE_DOLLAR, idempotency_key="new", expires_at=expiry, priority=5
        )

        await ledger.hold("cus_a", 1_250_000)

        remaining = {g.id: g.remaining for g in (await wallet("cus_a")).grants}
        assert remaining == {oldest.id: 750_000, newer.id: ONE_DOLLAR}
        assert urgent.id not in remaining

    async def test_expired_lots_are_not_spent(
        self, sqlite_ledger: Ledger, clock: FrozenClock
    ) -> None:
        await sqlite_ledger.grant(
            "cus_a",
            ONE_DOLLAR,
            idempotency_key="trial",
            expires_at=clock.now() + timedelta(hours=1),
        )
        clock.advance(3600)

        with pytest.raises(InsufficientCredit) as raised:
            await sqlite_ledger.hold("cus_a", 1)
        assert raised.value.extra["balance_micros"] == 0


class TestHold:
    async def test_hold_moves_credit_to_escrow(
        self, ledger: Ledger, wallet: Wallet, history: History, consistent: Check
    ) -> None:
        await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")

        hold = await ledger.hold("cus_a", 400_000, metadata={"model": "gpt-4o"})

        assert hold.status == "open"
        assert hold.id.startswith("hold_")
        assert hold.metadata == {"model": "gpt-4o"}
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (600_000, 400_000)
        entries = await history("cus_a", limit=2)
        assert {(e.kind, e.account_kind, e.amount) for e in entries} == {
            ("hold", "grant", -400_000),
            ("hold", "escrow", 400_000),
        }
        await consistent()

    async def test_metadata_with_nulls_and_floats_is_stored_as_given(
        self, ledger: Ledger, db: Database
    ) -> None:
        await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        metadata = {"a": None, "b": 1.5, "c": [1, {"d": None, "e": -0.25}], "f": "x"}

        await ledger.hold("cus_a", 10, metadata={"model": "m"})  # the customer is now cached
        hold = await ledger.hold("cus_a", 10, metadata=metadata)

        async with db.sessions() as session:
            stored = await ledger_service.get_hold(session, hold.id)
        assert hold.metadata == stored.metadata == metadata

    async def test_metadata_is_stored_as_its_json(self, ledger: Ledger, db: Database) -> None:
        await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
        ref = uuid.UUID(int=7)

        first = await ledger.hold("cus_a", 10, metadata={"at": at, "pair": (1, 2)})  # general
        second = await ledger.hold("cus_a", 10, metadata={"ref": ref})  # cached on SQLite

        async with db.sessions() as session:
            stored = [await ledger_service.get_hold(session, h.id) for h in (first, second)]
        assert [h.metadata for h in (first, second)] == [h.metadata for h in stored]
        assert stored[0].metadata == {"at": "2030-01-02T03:04:05+00:00", "pair": [1, 2]}
        assert stored[1].metadata == {"ref": str(ref)}

    async def test_insufficient_credit_raises_402_and_stores_nothing(
        self, ledger: Ledger, wallet: Wallet, row_counts: Counts, consistent: Check
    ) -> None:
        await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        before = await row_counts()

        with pytest.raises(InsufficientCredit) as raised:
            await ledger.hold("cus_a", ONE_DOLLAR + 1, idempotency_key="req-1")

        error = raised.value
        assert (error.status, error.code) == (402, "insufficient-credit")
        assert error.extra["balance_micros"] == ONE_DOLLAR
        assert error.extra["required_micros"] == ONE_DOLLAR + 1
        assert await row_counts() == before
        assert (await wallet("cus_a")).available_micros == ONE_DOLLAR
        await consistent()

    async def test_key_of_a_refused_hold_can_be_used_after_a_top_up(
        self, sqlite_ledger: Ledger
    ) -> None:
        with pytest.raises(InsufficientCredit):
            await sqlite_ledger.hold("cus_a", 10, idempotency_key="req-1")
        await sqlite_ledger.grant("cus_a", 10, idempotency_key="top-up")

        hold = await sqlite_ledger.hold("cus_a", 10, idempotency_key="req-1")

        assert hold.status == "open"

    async def test_same_key_returns_the_same_hold(
        self, ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        first = await ledger.hold("cus_a", 300_000, idempotency_key="req-1")

        again = await ledger.hold("cus_a", 300_000, idempotency_key="req-1")
        concurrent = await asyncio.gather(
            *(ledger.hold("cus_a", 300_000, idempotency_key="req-2") for _ in range(5))
        )

        assert first.available_after_micros == ONE_DOLLAR - 300_000
        assert again == replace(first, available_after_micros=None, replayed=True)
        assert len({h.id for h in concurrent}) == 1
        assert (await wallet("cus_a")).held_micros == 600_000
        await consistent()

    async def test_same_key_for_another_amount_raises(self, sqlite_ledger: Ledger) -> None:
        await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        await sqlite_ledger.hold("cus_a", 300_000, idempotency_key="req-1")

        with pytest.raises(IdempotencyKeyReused):
            await sqlite_ledger.hold("cus_a", 400_000, idempotency_key="req-1")

    async def test_a_hold_spanning_lots_records_its_allocations(
        self, sqlite_ledger: Ledger, sqlite_db: Database, consistent: Check
    ) -> None:
        await sqlite_ledger.grant("cus_a", 100, idempotency_key="a")
        await sqlite_ledger.grant("cus_a", 100, idempotency_key="b")

        hold = await sqlite_ledger.hold("cus_a", 150)

        async with sqlite_db.sessions() as session:
            stored = await ledger_service.get_hold(session, hold.id, customer_id="cus_a")
        assert stored == replace(hold, available_after_micros=None)
        assert hold.available_after_micros == 50
        await consistent()

    async def test_concurrent_holds_never_overdraw(
        self, ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await ledger.grant("cus_a", 200, idempotency_key="g")

        results = await asyncio.gather(
            *(ledger.hold("cus_a", 10) for _ in range(50)), return_exceptions=True
        )

        assert sum(1 for r in results if not isinstance(r, BaseException)) == 20
        assert all(isinstance(r, InsufficientCredit) for r in results if isinstance(r, Exception))
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (0, 200)
        await consistent()

    async def test_a_refused_hold_for_an_unknown_customer_stores_no_row_at_all(
        self, ledger: Ledger, db: Database
    ) -> None:
        with pytest.raises(InsufficientCredit):
            await ledger.hold("cus_never_granted", 1)

        async with db.sessions() as session:
            accounts = await session.scalar(select(func.count()).select_from(accounts_table))
        assert accounts == 0
