"""Overdraft: a configured credit line lets holds go down to -limit, and no further."""

from __future__ import annotations

import pytest

from tollhouse.ledger import InsufficientCredit, Ledger

from .conftest import Check, Wallet

LIMIT = 500


class TestOverdraft:
    async def test_overdraft_allows_down_to_minus_limit_and_no_further(
        self, ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await ledger.grant("cus_a", 1_000, idempotency_key="g")
        await ledger.set_overdraft_limit("cus_a", LIMIT)

        hold = await ledger.hold("cus_a", 1_000 + LIMIT)
        with pytest.raises(InsufficientCredit) as raised:
            await ledger.hold("cus_a", 1)
        await ledger.capture(hold.id, 1_000 + LIMIT)

        assert raised.value.extra["overdraft_available_micros"] == 0
        balance = await wallet("cus_a")
        assert balance.available_micros == 0
        assert balance.overdraft_limit_micros == LIMIT
        assert balance.overdraft_used_micros == LIMIT
        assert balance.spendable_micros == 0
        await consistent()

    async def test_without_overdraft_the_wallet_stops_at_zero(
        self, sqlite_ledger: Ledger, wallet: Wallet
    ) -> None:
        await sqlite_ledger.grant("cus_a", 1_000, idempotency_key="g")

        with pytest.raises(InsufficientCredit):
            await sqlite_ledger.hold("cus_a", 1_001)
        assert (await wallet("cus_a")).available_micros == 1_000

    async def test_release_returns_unused_overdraft(
        self, sqlite_ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await sqlite_ledger.grant("cus_a", 100, idempotency_key="g")
        await sqlite_ledger.set_overdraft_limit("cus_a", LIMIT)
        hold = await sqlite_ledger.hold("cus_a", 400)  # 100 from the lot, 300 on credit

        await sqlite_ledger.capture(hold.id, 150)  # lot's 100 first, then 50 on credit

        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.overdraft_used_micros) == (0, 50)
        await consistent()

    async def test_a_grant_repays_captured_debt_first(
        self, ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await ledger.set_overdraft_limit("cus_a", LIMIT)
        hold = await ledger.hold("cus_a", 300)
        await ledger.capture(hold.id, 200)

        grant = await ledger.grant("cus_a", 1_000, idempotency_key="top-up")

        assert grant.remaining == 800
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.overdraft_used_micros) == (800, 0)
        await consistent()

    async def test_a_grant_does_not_repay_credit_that_is_only_held(
        self, ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await ledger.set_overdraft_limit("cus_a", LIMIT)
        hold = await ledger.hold("cus_a", 300)

        await ledger.grant("cus_a", 1_000, idempotency_key="top-up")
        await ledger.void(hold.id)

        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.overdraft_used_micros) == (1_000, 0)
        await consistent()

    async def test_lowering_the_limit_keeps_debt_and_stops_new_draws(
        self, sqlite_ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await sqlite_ledger.set_overdraft_limit("cus_a", LIMIT)
        hold = await sqlite_ledger.hold("cus_a", 400)
        await sqlite_ledger.capture(hold.id, 400)

        await sqlite_ledger.set_overdraft_limit("cus_a", 100)

        with pytest.raises(InsufficientCredit):
            await sqlite_ledger.hold("cus_a", 1)
        balance = await wallet("cus_a")
        assert (balance.overdraft_limit_micros, balance.overdraft_used_micros) == (100, 400)
        await consistent()
