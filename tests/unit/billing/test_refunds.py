"""Refunds on SQLite and PostgreSQL: credits back through a new ledger grant (the capture
stays), a credit note in its own series naming the invoice that billed the charge, once per
key, never more than was captured."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select
from tests.unit.billing.conftest import APRIL_15, PACK_MICROS, SESSION_MICROS, Billing

from tollhouse.billing import ChargeNotRefundable, RefundExceedsCharge, RefundView
from tollhouse.billing import service as billing
from tollhouse.errors import IdempotencyKeyReused
from tollhouse.events import service as events
from tollhouse.ledger import HoldNotFound, Ledger, LedgerClosed
from tollhouse.ledger import service as ledger_service
from tollhouse.ledger.models import LedgerEntry

WALLET = 10 * SESSION_MICROS


class TestRefund:
    async def test_a_billed_session_fee_comes_back_with_a_credit_note_on_its_invoice(
        self, books: Billing
    ) -> None:
        customer = await books.customer("free", wallet_micros=WALLET)
        hold_id = await books.session_fee(customer, "s1")
        books.clock.set(APRIL_15)
        await books.close()
        (invoice,) = await books.invoices(customer)
        before = await books.available(customer)

        done = await billing.refund(
            books.db, books.ledger, terms=books.terms, clock=books.clock, hold_id=hold_id,
            idempotency_key="r1", reason="the upstream was down",
        )  # fmt: skip

        note = done.credit_note
        assert (done.status, done.amount_micros, done.replayed) == (
            "succeeded",
            SESSION_MICROS,
            False,
        )
        assert (note.kind, note.number, note.status) == ("credit_note", "CN-000001", "paid")
        assert note.credited_invoice_id == invoice.id
        assert [(line.kind, line.amount_micros) for line in note.lines] == [
            ("refund", -SESSION_MICROS)
        ]
        assert note.lines[0].description == "Refund: the upstream was down"
        assert note.total_micros == -SESSION_MICROS
        assert await books.available(customer) == before + SESSION_MICROS
        async with books.db.sessions() as session:
            grants = await ledger_service.list_grants(session, customer)
            captures = list(
                await session.scalars(
                    select(LedgerEntry.amount).where(
                        LedgerEntry.hold_id == hold_id, LedgerEntry.kind == "capture"
                    )
                )
            )
            page = await events.list_events(session, customer_id=customer)
        refund_grant = next(g for g in grants if g.id == done.grant_id)
        assert (refund_grant.source, refund_grant.amount, refund_grant.idempotency_key) == (
            "refund",
            SESSION_MICROS,
            f"refund:{done.id}",
        )
        assert sorted(captures) == [-SESSION_MICROS, SESSION_MICROS]  # the capture stays
        created = [e for e in page.events if e.type == "credit_note.created"]
        assert [(e.data["refund_id"], e.data["number"]) for e in created] == [
            (done.id, "CN-000001")
        ]

    async def test_the_same_key_answers_the_same_refund_and_gives_nothing_more(
        self, books: Billing
    ) -> None:
        customer = await books.customer("free", wallet_micros=WALLET)
        hold_id = await books.pack(customer, "p1")

        before = await books.available(customer)

        async def once(amount: int | None = 1_000_000) -> RefundView:
            return await billing.refund(
                books.db, books.ledger, terms=books.terms, clock=books.clock, hold_id=hold_id,
                idempotency_key="r1", amount_micros=amount,
            )  # fmt: skip

        first, second = await asyncio.gather(once(), once())
        replay = await once(None)
        with pytest.raises(IdempotencyKeyReused) as reused:
            await once(2_000_000)

        assert first.id == second.id == replay.id
        assert (first.replayed or second.replayed, replay.replayed) == (True, True)
        assert reused.value.extra["fields"] == ["amount_micros"]
        assert await books.available(customer) == before + 1_000_000

    async def test_partial_refunds_add_up_to_the_capture_and_no_further(
        self, books: Billing
    ) -> None:
        customer = await books.customer("free", wallet_micros=WALLET)
        before = await books.available(customer)
        hold_id = await books.pack(customer, "p1")

        async def refund(key: str, amount: int | None) -> int:
            done = await billing.refund(
                books.db, books.ledger, terms=books.terms, clock=books.clock, hold_id=hold_id,
                idempotency_key=key, amount_micros=amount,
            )  # fmt: skip
            return done.amount_micros

        assert await refund("a", 1_500_000) == 1_500_000
        assert await refund("b", None) == PACK_MICROS - 1_500_000  # the rest
        with pytest.raises(RefundExceedsCharge) as exceeded:
            await refund("c", 1)

        assert exceeded.value.extra["refundable_micros"] == 0
        assert await books.available(customer) == before
        assert [i.number for i in await books.invoices(customer)] == ["CN-000001", "CN-000002"]

    async def test_concurrent_refunds_of_one_hold_never_give_back_more_than_it_took(
        self, books: Billing
    ) -> None:
        customer = await books.customer("free", wallet_micros=WALLET)
        hold_id = await books.session_fee(customer, "s1")

        async def refund(key: str) -> int:
            try:
                done = await billing.refund(
                    books.db, books.ledger, terms=books.terms, clock=books.clock,
                    hold_id=hold_id, idempotency_key=key, amount_micros=400_000,
                )  # fmt: skip
            except RefundExceedsCharge:
                return 0
            return done.amount_micros

        given = await asyncio.gather(*(refund(f"k{n}") for n in range(4)))

        assert sorted(given) == [0, 0, 400_000, 400_000]  # two fit in the $1.00 fee
        numbers = [i.number for i in await books.invoices(customer)]
        assert sorted(numbers) == ["CN-000001", "CN-000002"]  # refused ones took no number

    async def test_what_was_not_captured_cannot_be_refunded(self, books: Billing) -> None:
        customer = await books.customer("free", wallet_micros=WALLET)
        hold = await books.ledger.hold(customer, 1_000, idempotency_key="open")

        with pytest.raises(ChargeNotRefundable):
            await billing.refund(
                books.db, books.ledger, terms=books.terms, clock=books.clock, hold_id=hold.id,
                idempotency_key="r1",
            )  # fmt: skip
        with pytest.raises(HoldNotFound):
            await billing.refund(
                books.db, books.ledger, terms=books.terms, clock=books.clock,
                hold_id="hold_unknown", idempotency_key="r2",
            )  # fmt: skip

    async def test_a_refund_interrupted_before_its_grant_is_finished_by_the_sweep(
        self, books: Billing
    ) -> None:
        customer = await books.customer("free", wallet_micros=WALLET)
        before = await books.available(customer)
        hold_id = await books.session_fee(customer, "s1")
        stopped = Ledger(books.db, clock=books.clock)
        await stopped.stop()  # a writer that refuses everything: the process "dies" there

        with pytest.raises(LedgerClosed):
            await billing.refund(
                books.db, stopped, terms=books.terms, clock=books.clock, hold_id=hold_id,
                idempotency_key="r1",
            )  # fmt: skip
        (pending,) = await books.invoices(customer)
        finished = await billing.complete_refunds(books.db, books.ledger, clock=books.clock)
        again = await billing.complete_refunds(books.db, books.ledger, clock=books.clock)

        (note,) = await books.invoices(customer)
        assert (pending.status, note.status, finished, again) == ("open", "paid", 1, 0)
        assert await books.available(customer) == before
