"""Manual payments and refunds through `Payments`, on SQLite and PostgreSQL: the pack's
credits are a payment transfer from the payments account, its bonus a second grant that
expires, each posted once; a refund reverses what the wallet still holds."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import select

from tollhouse.catalog import CreditPackNotFound
from tollhouse.clock import FrozenClock
from tollhouse.errors import IdempotencyKeyReused, InvalidInput
from tollhouse.ledger import Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.ledger.models import AccountKind, account_id_for, accounts_table
from tollhouse.payments import PaymentNotRefundable, Payments
from tollhouse.payments.service import PURCHASED_PRIORITY
from tollhouse.storage import Database

from .conftest import NewCustomer, event_types, wallet

FIFTY = 50_000_000
FIVE = 5_000_000


async def system_balance(db: Database, kind: AccountKind) -> int:
    async with db.transaction() as session:
        value = await session.scalar(
            select(accounts_table.c.balance).where(
                accounts_table.c.id == account_id_for(kind, "usd")
            )
        )
    return int(value or 0)


class TestManualPayment:
    async def test_a_pack_posts_the_payment_and_the_bonus_as_two_exact_transfers(
        self, db: Database, payments: Payments, new_customer: NewCustomer, clock: FrozenClock
    ) -> None:
        customer = await new_customer()

        paid = await payments.record_manual(customer, pack="pack-50", idempotency_key="wire-1")

        assert (paid.status, paid.provider, paid.kind) == ("succeeded", "manual", "credit_pack")
        assert (paid.amount_micros, paid.credits_micros, paid.bonus_micros) == (FIFTY, FIFTY, FIVE)
        assert paid.bonus_expires_at == clock.now() + timedelta(days=90)
        async with db.transaction() as session:
            history = await ledger_service.transactions(session, customer)
            grants = {g.id: g for g in await ledger_service.list_grants(session, customer)}
        assert sorted((e.kind, e.amount, e.account_id) for e in history) == sorted(
            [
                ("payment", FIFTY, paid.credits_grant_id),
                ("grant", FIVE, paid.bonus_grant_id),
            ]
        )
        credits, bonus = grants[paid.credits_grant_id or ""], grants[paid.bonus_grant_id or ""]
        assert (credits.source, credits.priority, credits.expires_at) == (
            "purchased",
            PURCHASED_PRIORITY,
            None,
        )
        assert (bonus.source, bonus.expires_at) == ("promotional", paid.bonus_expires_at)
        assert await system_balance(db, AccountKind.PAYMENTS) == -FIFTY
        assert await system_balance(db, AccountKind.ISSUANCE) == -FIVE
        assert (await wallet(db, customer, clock)).available_micros == FIFTY + FIVE
        assert await event_types(db, customer) == ["payment.succeeded"]
        async with db.transaction() as session:
            assert await ledger_service.check_invariants(session) == []

    async def test_the_bonus_is_spent_first_and_expires(
        self, db: Database, payments: Payments, ledger: Ledger, new_customer: NewCustomer,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        await payments.record_manual(customer, pack="pack-50", idempotency_key="wire-1")

        hold = await ledger.hold(customer, 1_000_000)
        await ledger.capture(hold.id, 1_000_000)
        assert (await wallet(db, customer, clock)).grants[0][:2] == (
            FIVE - 1_000_000,
            "promotional",
        )

        clock.advance(timedelta(days=90).total_seconds())
        await ledger.sweep(clock.now())
        assert (await wallet(db, customer, clock)).available_micros == FIFTY

    async def test_the_same_key_posts_once_even_at_once(
        self, db: Database, payments: Payments, new_customer: NewCustomer, clock: FrozenClock
    ) -> None:
        customer = await new_customer()

        answers = await asyncio.gather(
            *(
                payments.record_manual(customer, pack="pack-100", idempotency_key="wire-9")
                for _ in range(5)
            )
        )

        assert len({a.id for a in answers}) == 1
        assert sum(not a.replayed for a in answers) >= 1
        assert (await wallet(db, customer, clock)).available_micros == 115_000_000
        assert await event_types(db, customer) == ["payment.succeeded"]

    async def test_the_same_key_for_another_payment_is_refused(
        self, payments: Payments, new_customer: NewCustomer
    ) -> None:
        customer = await new_customer()
        await payments.record_manual(customer, pack="pack-10", idempotency_key="k")

        with pytest.raises(IdempotencyKeyReused) as refused:
            await payments.record_manual(customer, pack="pack-50", idempotency_key="k")
        assert refused.value.extra["fields"] == ["pack", "amount_micros"]

    async def test_an_amount_buys_as_many_credits_without_bonus(
        self, db: Database, payments: Payments, new_customer: NewCustomer, clock: FrozenClock
    ) -> None:
        customer = await new_customer()

        paid = await payments.record_manual(customer, amount_micros=7_250_000, idempotency_key="k")

        assert (paid.kind, paid.credits_micros, paid.bonus_grant_id) == ("credits", 7_250_000, None)
        assert (await wallet(db, customer, clock)).available_micros == 7_250_000

    async def test_bad_input_posts_nothing(
        self, db: Database, payments: Payments, new_customer: NewCustomer, clock: FrozenClock
    ) -> None:
        customer = await new_customer()
        with pytest.raises(InvalidInput):
            await payments.record_manual(customer, idempotency_key="k")
        with pytest.raises(CreditPackNotFound):
            await payments.record_manual(customer, pack="nope", idempotency_key="k")
        assert (await wallet(db, customer, clock)).available_micros == 0


class TestRefund:
    async def test_a_full_refund_takes_back_credits_and_bonus(
        self, db: Database, payments: Payments, new_customer: NewCustomer, clock: FrozenClock
    ) -> None:
        customer = await new_customer()
        paid = await payments.record_manual(customer, pack="pack-50", idempotency_key="w")

        refunded = await payments.refund(paid.id, amount_micros=None, idempotency_key="r")

        [step] = refunded.refunds
        assert (step.amount_micros, step.credits_requested_micros) == (FIFTY, FIFTY + FIVE)
        assert (step.credits_reversed_micros, step.unrecovered_micros) == (FIFTY + FIVE, 0)
        assert refunded.refunded_micros == FIFTY
        assert (await wallet(db, customer, clock)).available_micros == 0
        assert await system_balance(db, AccountKind.PAYMENTS) == 0
        assert await system_balance(db, AccountKind.ISSUANCE) == 0
        assert await event_types(db, customer) == ["payment.succeeded", "payment.refunded"]

    async def test_partial_refunds_take_proportional_shares_that_add_up(
        self, db: Database, payments: Payments, new_customer: NewCustomer, clock: FrozenClock
    ) -> None:
        customer = await new_customer()
        paid = await payments.record_manual(customer, pack="pack-100", idempotency_key="w")

        first = await payments.refund(paid.id, amount_micros=33_333_333, idempotency_key="r1")
        second = await payments.refund(paid.id, amount_micros=None, idempotency_key="r2")

        shares = [s.credits_reversed_micros for s in second.refunds]
        # 115 * 33.333333 / 100, floored; then the rest: together all 115.
        assert shares == [38_333_332, 115_000_000 - 38_333_332]
        assert first.refunded_micros == 33_333_333 and second.refunded_micros == 100_000_000
        assert (await wallet(db, customer, clock)).available_micros == 0

    async def test_spent_credits_stay_spent_and_are_reported(
        self, db: Database, payments: Payments, ledger: Ledger, new_customer: NewCustomer,
        clock: FrozenClock,
    ) -> None:  # fmt: skip
        customer = await new_customer()
        paid = await payments.record_manual(customer, pack="pack-50", idempotency_key="w")
        hold = await ledger.hold(customer, 40_000_000)
        await ledger.capture(hold.id, 40_000_000)

        refunded = await payments.refund(paid.id, amount_micros=None, idempotency_key="r")

        [step] = refunded.refunds
        assert step.credits_reversed_micros == 15_000_000
        assert step.unrecovered_micros == 40_000_000
        assert (await wallet(db, customer, clock)).available_micros == 0
        async with db.transaction() as session:
            assert await ledger_service.check_invariants(session) == []

    async def test_a_refund_replayed_takes_nothing_twice(
        self, db: Database, payments: Payments, new_customer: NewCustomer, clock: FrozenClock
    ) -> None:
        customer = await new_customer()
        paid = await payments.record_manual(customer, pack="pack-10", idempotency_key="w")

        answers = await asyncio.gather(
            *(payments.refund(paid.id, amount_micros=4_000_000, idempotency_key="r") for _ in "ab")
        )

        assert [len(a.refunds) for a in answers] == [1, 1]
        assert (await wallet(db, customer, clock)).available_micros == 6_000_000
        await payments.refund(paid.id, amount_micros=None, idempotency_key="r2")
        with pytest.raises(PaymentNotRefundable):
            await payments.refund(paid.id, amount_micros=None, idempotency_key="r3")
