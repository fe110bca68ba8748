"""check_invariants: empty on a healthy ledger, and names each kind of corruption."""

from __future__ import annotations

from sqlalchemy import text

from tollhouse.ledger import AccountKind, Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.ledger.models import account_id_for
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

    async def test_a_hold_captured_twice_is_reported(
        self, sqlite_ledger: Ledger, sqlite_db: Database
    ) -> None:
        await sqlite_ledger.grant("cus_a", 1_000, idempotency_key="g")
        hold = await sqlite_ledger.hold("cus_a", 100)
        await sqlite_ledger.capture(hold.id, 60)
        async with sqlite_db.transaction() as session:  # replay the capture's transfer
            await session.execute(
                text(
                    "INSERT INTO ledger_entries (transfer_id, account_id, customer_id, amount, "
                    "kind, hold_id, created_at, description) SELECT 'tr_again', account_id, "
                    "customer_id, amount, kind, hold_id, created_at, description "
                    "FROM ledger_entries WHERE kind = 'capture' AND hold_id = :id"
                ),
                {"id": hold.id},
            )
            await session.execute(
                text(
                    "UPDATE ledger_accounts SET balance = (SELECT coalesce(sum(amount), 0) FROM "
                    "ledger_entries WHERE account_id = ledger_accounts.id)"
                )
            )

        found = await problems(sqlite_db)

        assert [p for p in found if p.startswith(f"hold {hold.id}")] == [
            f"hold {hold.id} (captured, amount 100, captured 60): escrow moved in 100, "
            "captured 120, released 40, voided 0"
        ]

    async def test_a_captured_hold_that_was_also_voided_is_reported(
        self, sqlite_ledger: Ledger, sqlite_db: Database
    ) -> None:
        await sqlite_ledger.grant("cus_a", 1_000, idempotency_key="g")
        hold = await sqlite_ledger.hold("cus_a", 100)
        await sqlite_ledger.capture(hold.id, 100)
        async with sqlite_db.transaction() as session:
            await session.execute(
                text(
                    "UPDATE ledger_entries SET kind = 'void' WHERE hold_id = :id AND kind = 'capture'"
                ),
                {"id": hold.id},
            )

        found = await problems(sqlite_db)

        assert any(p.startswith(f"hold {hold.id} (captured") and "voided 100" in p for p in found)

    async def test_an_open_hold_with_a_release_and_a_missing_hold_are_reported(
        self, sqlite_ledger: Ledger, sqlite_db: Database
    ) -> None:
        await sqlite_ledger.grant("cus_a", 1_000, idempotency_key="g")
        hold = await sqlite_ledger.hold("cus_a", 100)
        other = await sqlite_ledger.hold("cus_a", 50)
        await sqlite_ledger.void(other.id)
        async with sqlite_db.transaction() as session:
            await session.execute(
                text("UPDATE ledger_holds SET status = 'open', settled_at = NULL WHERE id = :id"),
                {"id": other.id},
            )
            await session.execute(
                text("UPDATE ledger_entries SET hold_id = 'hold_gone' WHERE hold_id = :id"),
                {"id": hold.id},
            )

        found = await problems(sqlite_db)

        assert any(p.startswith(f"hold {other.id} (open") and "voided 50" in p for p in found)
        assert any(p.startswith(f"hold {hold.id} (open") and "moved in 0" in p for p in found)
        assert "entries name hold hold_gone, which does not exist" in found

    async def test_a_lowered_overdraft_limit_is_consistent_but_a_deeper_draw_is_not(
        self, sqlite_ledger: Ledger, sqlite_db: Database
    ) -> None:
        await sqlite_ledger.set_overdraft_limit("cus_a", 300)
        await sqlite_ledger.hold("cus_a", 250)
        await sqlite_ledger.set_overdraft_limit("cus_a", 100)
        await sqlite_ledger.set_overdraft_limit("cus_a", 200)

        assert await problems(sqlite_db) == []  # drawn 250 under a limit of 300, since lowered

        async with sqlite_db.transaction() as session:  # a draw no limit ever allowed
            await session.execute(
                text("UPDATE ledger_accounts SET amount = 240 WHERE kind = 'overdraft'")
            )

        found = await problems(sqlite_db)

        assert [p for p in found if p.startswith("wallet of cus_a")] == [
            f"wallet of cus_a: overdraft line {_overdraft_id()} at -250, below the largest "
            "limit ever set (-240)"
        ]


def _overdraft_id() -> str:
    return account_id_for(AccountKind.OVERDRAFT, "usd", "cus_a")
