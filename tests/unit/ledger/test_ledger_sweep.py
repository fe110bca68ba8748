"""Sweep: expire lots past their expiry and void stale holds, each exactly once."""

from __future__ import annotations

from datetime import timedelta

from tollhouse.clock import FrozenClock
from tollhouse.ledger import Ledger, SweepResult
from tollhouse.ledger import service as ledger_service
from tollhouse.storage import Database

from .conftest import Check, Counts, History, Wallet

HOUR = 3600


class TestSweep:
    async def test_sweep_expires_lots_and_stale_holds_exactly_once(
        self,
        ledger: Ledger,
        db: Database,
        wallet: Wallet,
        clock: FrozenClock,
        consistent: Check,
        row_counts: Counts,
    ) -> None:
        await ledger.grant(
            "cus_a", 1_000, idempotency_key="trial", expires_at=clock.now() + timedelta(hours=1)
        )
        await ledger.grant("cus_a", 500, idempotency_key="paid")
        stale = await ledger.hold("cus_a", 200, expires_at=clock.now() + timedelta(hours=2))
        clock.advance(3 * HOUR)

        first = await ledger.sweep()
        after_first = await row_counts()
        second = await ledger.sweep()

        assert first == SweepResult(expired_grants=1, expired_micros=1_000, expired_holds=1)
        assert second == SweepResult()
        assert await row_counts() == after_first
        async with db.sessions() as session:
            assert (await ledger_service.get_hold(session, stale.id)).status == "expired"
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (500, 0)
        await consistent()

    async def test_money_held_from_a_lot_that_expired_meanwhile_expires_after_release(
        self,
        sqlite_ledger: Ledger,
        wallet: Wallet,
        clock: FrozenClock,
        history: History,
        consistent: Check,
    ) -> None:
        await sqlite_ledger.grant(
            "cus_a", 1_000, idempotency_key="trial", expires_at=clock.now() + timedelta(hours=1)
        )
        hold = await sqlite_ledger.hold("cus_a", 600, expires_at=clock.now() + timedelta(days=1))
        clock.advance(2 * HOUR)
        assert (await sqlite_ledger.sweep()).expired_micros == 400  # the unheld rest

        await sqlite_ledger.capture(hold.id, 100)  # 500 released into the expired lot
        assert (await wallet("cus_a")).available_micros == 0  # expired lots are not live
        result = await sqlite_ledger.sweep()

        assert result == SweepResult(expired_grants=1, expired_micros=500)
        assert (await history("cus_a", limit=1))[0].kind == "expire"
        await consistent()

    async def test_sweep_before_anything_is_due_does_nothing(
        self, sqlite_ledger: Ledger, clock: FrozenClock, row_counts: Counts
    ) -> None:
        await sqlite_ledger.grant(
            "cus_a", 1_000, idempotency_key="trial", expires_at=clock.now() + timedelta(hours=1)
        )
        await sqlite_ledger.hold("cus_a", 100)
        before = await row_counts()

        assert await sqlite_ledger.sweep() == SweepResult()
        assert await row_counts() == before

    async def test_sweep_covers_many_customers(
        self, sqlite_ledger: Ledger, wallet: Wallet, clock: FrozenClock, consistent: Check
    ) -> None:
        for n in range(20):
            await sqlite_ledger.grant(
                f"cus_{n}",
                100,
                idempotency_key="trial",
                expires_at=clock.now() + timedelta(hours=1),
            )

        result = await sqlite_ledger.sweep(clock.now() + timedelta(hours=1))

        assert (result.expired_grants, result.expired_micros) == (20, 2_000)
        await consistent()
