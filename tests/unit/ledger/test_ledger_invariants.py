"""check_invariants: empty on a healthy ledger, and names each kind of corruption."""

from __future__ import annotations

from sqlalchemy import text

from tollhouse.ledger import Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.storage import Database


async def problems(db: Database) -> list[str]:
    async with db.sessions() as session:
        return await ledger_service.check_invariants(session)


class TestCheckInvariants:
    async def test_a_busy_ledger_is_consistent(
        self, sqlite_ledger: Ledger, sqlite_db: Database
    ) -> None:
        await sqlite_ledger.grant("cus_a", 1_000, idempotency_key="g")
        await sqlite_ledger.set_overdraft_limit("cus_a", 100)
        first = await sqlite_ledger.hold("cus_a", 600)
        second = await sqlite_ledger.hold("cus_a", 450)
        await sqlite_ledger.capture(first.id, 599)
        await sqlite_ledger.void(second.id)
        await sqlite_ledger.hold("cus_a", 10)

        assert await problems(sqlite_db) == []

    async def test_a_balance_that_differs_from_its_entries_is_reported(
        self, sqlite_ledger: Ledger, sqlite_db: Database
    ) -> None:
        grant = await sqlite_ledger.grant("cus_a", 1_000, idempotency_key="g")
        async with sqlite_db.transaction() as session:
            await session.execute(
                text("UPDATE ledger_accounts SET balance = balance + 1 WHERE id = :id"),
                {"id": grant.id},
            )

        found = await problems(sqlite_db)

        assert any(grant.id in p and "sum of entries" in p for p in found)

    async def test_a_one_sided_entry_is_reported(
        self, sqlite_ledger: Ledger, sqlite_db: Database
    ) -> None:
        await sqlite_ledger.grant("cus_a", 1_000, idempotency_key="g")
        async with sqlite_db.transaction() as session:
            await session.execute(
                text("DELETE FROM ledger_entries WHERE id = (SELECT max(id) FROM ledger_entries)")
            )

        found = await problems(sqlite_db)

        assert any("transfer" in p and "1 entries" in p for p in found)
        assert any("sum of entries" in p for p in found)

    async def test_a_lot_below_zero_and_a_lost_hold_are_reported(
        self, sqlite_ledger: Ledger, sqlite_db: Database
    ) -> None:
        grant = await sqlite_ledger.grant("cus_a", 1_000, idempotency_key="g")
        hold = await sqlite_ledger.hold("cus_a", 100)
        async with sqlite_db.transaction() as session:
            await session.execute(
                text("UPDATE ledger_accounts SET balance = -5 WHERE id = :id"), {"id": grant.id}
            )
            await session.execute(
                text("UPDATE ledger_holds SET status = 'voided' WHERE id = :id"), {"id": hold.id}
            )

        found = await problems(sqlite_db)

        assert any("below lower bound" in p for p in found)
        assert any(p.startswith("escrow") for p in found)
