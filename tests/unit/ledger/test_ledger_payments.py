"""Paid grants (payments -> lot), reversals (a refund takes a lot's rest back to its funder),
and the hold listener, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from tollhouse.ledger import GrantNotFound, HoldView, Ledger
from tollhouse.ledger.models import AccountKind, account_id_for, accounts_table
from tollhouse.storage import Database

from .conftest import Check, History, Wallet

TEN_DOLLARS = 10_000_000
FOUR_DOLLARS = 4_000_000
ONE_DOLLAR = 1_000_000


async def system_balance(db: Database, kind: AccountKind) -> int:
    """The balance of the `usd` system account of `kind` (0 before it exists)."""
    async with db.sessions() as session:
        value = await session.scalar(
            select(accounts_table.c.balance).where(
                accounts_table.c.id == account_id_for(kind, "usd")
            )
        )
    return int(value or 0)


class TestPaidGrant:
    async def test_a_paid_grant_is_a_payment_transfer_from_the_payments_account(
        self, db: Database, ledger: Ledger, wallet: Wallet, history: History, consistent: Check
    ) -> None:
        grant = await ledger.grant(
            "cus_a", TEN_DOLLARS, idempotency_key="pay-1", source="purchased", paid=True
        )

        assert (await wallet("cus_a")).available_micros == TEN_DOLLARS
        [entry] = await history("cus_a")
        assert (entry.kind, entry.amount, entry.account_id) == ("payment", TEN_DOLLARS, grant.id)
        assert await system_balance(db, AccountKind.PAYMENTS) == -TEN_DOLLARS
        assert await system_balance(db, AccountKind.ISSUANCE) == 0
        await consistent()

    async def test_an_unpaid_grant_still_comes_from_issuance(
        self, db: Database, ledger: Ledger, history: History
    ) -> None:
        await ledger.grant("cus_a", TEN_DOLLARS, idempotency_key="promo")

        assert [e.kind for e in await history("cus_a")] == ["grant"]
        assert await system_balance(db, AccountKind.ISSUANCE) == -TEN_DOLLARS
        assert await system_balance(db, AccountKind.PAYMENTS) == 0


class TestReverseGrant:
    async def test_a_reversal_takes_credits_back_to_the_payments_account(
        self, db: Database, ledger: Ledger, wallet: Wallet, history: History, consistent: Check
    ) -> None:
        grant = await ledger.grant("cus_a", TEN_DOLLARS, idempotency_key="pay-1", paid=True)

        reversal = await ledger.reverse_grant(
            grant.id, FOUR_DOLLARS, idempotency_key="refund-1", description="refund"
        )

        assert (reversal.requested_micros, reversal.reversed_micros) == (FOUR_DOLLARS,) * 2
        assert not reversal.replayed
        assert (await wallet("cus_a")).available_micros == TEN_DOLLARS - FOUR_DOLLARS
        newest = (await history("cus_a"))[0]
        assert (newest.kind, newest.amount, newest.transfer_id) == (
            "refund",
            -FOUR_DOLLARS,
            reversal.transfer_id,
        )
        assert await system_balance(db, AccountKind.PAYMENTS) == -(TEN_DOLLARS - FOUR_DOLLARS)
        await consistent()

    async def test_the_same_key_moves_nothing_twice(
        self, ledger: Ledger, wallet: Wallet, history: History
    ) -> None:
        grant = await ledger.grant("cus_a", TEN_DOLLARS, idempotency_key="pay-1", paid=True)
        first = await ledger.reverse_grant(grant.id, FOUR_DOLLARS, idempotency_key="r")

        again = await ledger.reverse_grant(grant.id, FOUR_DOLLARS, idempotency_key="r")

        assert again.replayed and again.reversed_micros == first.reversed_micros
        assert again.transfer_id == first.transfer_id
        assert (await wallet("cus_a")).available_micros == TEN_DOLLARS - FOUR_DOLLARS
        assert len(await history("cus_a")) == 2

    async def test_concurrent_reversals_with_one_key_move_once(
        self, ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        grant = await ledger.grant("cus_a", TEN_DOLLARS, idempotency_key="pay-1", paid=True)

        answers = await asyncio.gather(
            *(ledger.reverse_grant(grant.id, ONE_DOLLAR, idempotency_key="r") for _ in range(10))
        )

        assert sum(not a.replayed for a in answers) == 1
        assert (await wallet("cus_a")).available_micros == TEN_DOLLARS - ONE_DOLLAR
        await consistent()

    async def test_spent_credits_are_not_taken_back(
        self, db: Database, ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        grant = await ledger.grant("cus_a", TEN_DOLLARS, idempotency_key="pay-1", paid=True)
        spent = await ledger.hold("cus_a", 7 * ONE_DOLLAR)
        await ledger.capture(spent.id, 7 * ONE_DOLLAR)

        reversal = await ledger.reverse_grant(grant.id, TEN_DOLLARS, idempotency_key="r")

        assert reversal.reversed_micros == 3 * ONE_DOLLAR
        assert (await wallet("cus_a")).available_micros == 0
        assert await system_balance(db, AccountKind.PAYMENTS) == -7 * ONE_DOLLAR
        await consistent()

    async def test_a_promotional_lot_goes_back_to_issuance(
        self, db: Database, ledger: Ledger, consistent: Check
    ) -> None:
        grant = await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="bonus")

        await ledger.reverse_grant(grant.id, ONE_DOLLAR, idempotency_key="r")

        assert await system_balance(db, AccountKind.ISSUANCE) == 0
        assert await system_balance(db, AccountKind.PAYMENTS) == 0
        await consistent()

    async def test_another_customers_grant_is_not_found(self, ledger: Ledger) -> None:
        grant = await ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g", paid=True)

        with pytest.raises(GrantNotFound):
            await ledger.reverse_grant(
                grant.id, ONE_DOLLAR, idempotency_key="r", customer_id="cus_b"
            )


class TestHoldListener:
    async def test_the_listener_sees_new_holds_with_the_balance_after_them(
        self, ledger: Ledger
    ) -> None:
        seen: list[HoldView] = []
        ledger.watch_holds(seen.append)
        await ledger.grant("cus_a", TEN_DOLLARS, idempotency_key="g")

        hold = await ledger.hold("cus_a", FOUR_DOLLARS, idempotency_key="h")
        await ledger.hold("cus_a", FOUR_DOLLARS, idempotency_key="h")  # a replay

        assert [(h.id, h.available_after_micros) for h in seen] == [
            (hold.id, TEN_DOLLARS - FOUR_DOLLARS)
        ]
        ledger.unwatch_holds(seen.append)
        await ledger.hold("cus_a", ONE_DOLLAR)
        assert len(seen) == 1
