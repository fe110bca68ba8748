"""Grants: lots funded from issuance, idempotent by key, revocable; the wallet's balance."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tollhouse.clock import FrozenClock
from tollhouse.ledger import GrantNotFound, IdempotencyKeyReused, InsufficientCredit, Ledger

from .conftest import Check, Counts, History, Wallet

TEN_DOLLARS = 10_000_000
ONE_DOLLAR = 1_000_000
EXPIRY = datetime(2027, 1, 1, tzinfo=UTC)
"""After the tests' frozen clock (2026-03-15)."""


class TestGrant:
    async def test_grant_credits_the_wallet(
        self, ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        grant = await ledger.grant(
            "cus_a",
            TEN_DOLLARS,
            idempotency_key="signup",
            source="promotional",
            description="welcome",
        )

        assert grant.amount == grant.remaining == TEN_DOLLARS
        assert grant.source == "promotional"
        assert grant.id.startswith("acct_")
        balance = await wallet("cus_a")
        assert balance.available_micros == TEN_DOLLARS
        assert balance.held_micros == 0
        assert [g.id for g in balance.grants] == [grant.id]
        await consistent()

    async def test_same_key_returns_the_first_grant_without_double_credit(
        self, ledger: Ledger, wallet: Wallet, consistent: Check, row_counts: Counts
    ) -> None:
        first = await ledger.grant("cus_a", TEN_DOLLARS, idempotency_key="order-1")
        entries_after_first, _ = await row_counts()

        again = await ledger.grant("cus_a", TEN_DOLLARS, idempotency_key="order-1")

        assert again.id == first.id
        assert (first.replayed, again.replayed) == (False, True)
        assert (await wallet("cus_a")).available_micros == TEN_DOLLARS
        assert (await row_counts())[0] == entries_after_first
        await consistent()

    async def test_same_key_in_one_batch_credits_once(
        self, ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        grants = await asyncio.gather(
            *(ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="dup") for _ in range(10))
        )

        assert len({g.id for g in grants}) == 1
        assert (await wallet("cus_a")).available_micros == ONE_DOLLAR
        await consistent()

    async def test_same_key_with_another_amount_raises(self, sqlite_ledger: Ledger) -> None:
        await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="k")

        with pytest.raises(IdempotencyKeyReused) as raised:
            await sqlite_ledger.grant("cus_a", 2 * ONE_DOLLAR, idempotency_key="k")
        assert raised.value.status == 422
        assert raised.value.extra["fields"] == ["amount"]

    @pytest.mark.parametrize(
        ("changed", "fields"),
        [
            ({"description": "other"}, ["description"]),
            ({"priority": 3}, ["priority"]),
            ({"source": "promotional", "expires_at": EXPIRY}, ["expires_at", "source"]),
        ],
    )
    async def test_same_key_with_other_fields_raises_naming_them(
        self,
        sqlite_ledger: Ledger,
        wallet: Wallet,
        changed: dict[str, object],
        fields: list[str],
    ) -> None:
        await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="k", description="first")

        with pytest.raises(IdempotencyKeyReused) as raised:
            await sqlite_ledger.grant(
                "cus_a", ONE_DOLLAR, idempotency_key="k", **{"description": "first", **changed}
            )

        assert raised.value.extra["fields"] == fields
        assert (await wallet("cus_a")).available_micros == ONE_DOLLAR

    async def test_keys_are_per_customer(self, sqlite_ledger: Ledger, wallet: Wallet) -> None:
        a = await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="k")
        b = await sqlite_ledger.grant("cus_b", ONE_DOLLAR, idempotency_key="k")

        assert a.id != b.id
        assert (await wallet("cus_b")).available_micros == ONE_DOLLAR

    async def test_currencies_are_separate_wallets(
        self, sqlite_ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="usd")
        await sqlite_ledger.grant("cus_a", 3 * ONE_DOLLAR, idempotency_key="eur", currency="eur")

        assert (await wallet("cus_a")).available_micros == ONE_DOLLAR
        assert (await wallet("cus_a", "eur")).available_micros == 3 * ONE_DOLLAR
        await consistent()

    async def test_balance_lists_live_grants_in_spend_order(
        self, sqlite_ledger: Ledger, wallet: Wallet, clock: FrozenClock
    ) -> None:
        forever = await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="forever")
        later = await sqlite_ledger.grant(
            "cus_a",
            ONE_DOLLAR,
            idempotency_key="later",
            expires_at=clock.now() + timedelta(days=30),
        )
        soon = await sqlite_ledger.grant(
            "cus_a", ONE_DOLLAR, idempotency_key="soon", expires_at=clock.now() + timedelta(days=1)
        )

        balance = await wallet("cus_a")

        assert [g.id for g in balance.grants] == [soon.id, later.id, forever.id]

    async def test_unknown_customer_has_an_empty_wallet(
        self, sqlite_ledger: Ledger, wallet: Wallet
    ) -> None:
        balance = await wallet("cus_nobody")

        assert (balance.available_micros, balance.held_micros, balance.grants) == (0, 0, [])


class TestRevoke:
    async def test_revoke_returns_the_rest_to_issuance(
        self, ledger: Ledger, wallet: Wallet, consistent: Check, history: History
    ) -> None:
        grant = await ledger.grant("cus_a", TEN_DOLLARS, idempotency_key="g")
        await ledger.hold("cus_a", ONE_DOLLAR)

        revoked = await ledger.revoke_grant(grant.id)

        assert revoked.revoked_at is not None
        assert revoked.remaining == 0
        balance = await wallet("cus_a")
        assert balance.available_micros == 0
        assert balance.held_micros == ONE_DOLLAR  # held money stays held
        assert (await history("cus_a"))[0].kind == "revoke"
        await consistent()

    async def test_revoke_is_idempotent(
        self, sqlite_ledger: Ledger, row_counts: Counts, consistent: Check
    ) -> None:
        grant = await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        first = await sqlite_ledger.revoke_grant(grant.id)
        entries, _ = await row_counts()

        second = await sqlite_ledger.revoke_grant(grant.id)

        assert second.revoked_at == first.revoked_at
        assert (await row_counts())[0] == entries
        await consistent()

    async def test_money_released_into_a_revoked_grant_goes_back_to_issuance(
        self, sqlite_ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        grant = await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        hold = await sqlite_ledger.hold("cus_a", 600_000)
        await sqlite_ledger.revoke_grant(grant.id)

        await sqlite_ledger.capture(hold.id, 100_000)

        balance = await wallet("cus_a")
        assert balance.available_micros == 0
        assert balance.held_micros == 0
        await consistent()

    async def test_revoked_grant_is_never_spent(
        self, sqlite_ledger: Ledger, consistent: Check
    ) -> None:
        grant = await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")
        hold = await sqlite_ledger.hold("cus_a", ONE_DOLLAR)
        await sqlite_ledger.revoke_grant(grant.id)
        await sqlite_ledger.void(hold.id)

        with pytest.raises(InsufficientCredit):
            await sqlite_ledger.hold("cus_a", 1)
        await consistent()

    async def test_unknown_grant_raises_not_found(self, sqlite_ledger: Ledger) -> None:
        with pytest.raises(GrantNotFound) as raised:
            await sqlite_ledger.revoke_grant("acct_nope")
        assert raised.value.status == 404

    async def test_another_customers_grant_raises_not_found(self, sqlite_ledger: Ledger) -> None:
        grant = await sqlite_ledger.grant("cus_a", ONE_DOLLAR, idempotency_key="g")

        with pytest.raises(GrantNotFound):
            await sqlite_ledger.revoke_grant(grant.id, customer_id="cus_b")
