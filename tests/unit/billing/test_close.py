"""The period close on SQLite and PostgreSQL with a frozen clock: what each invoice bills,
its numbers, and that closing again (or late, or twice at once) changes nothing."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from sqlalchemy import func, select
from tests.unit.billing.conftest import (
    APRIL_15,
    BASIC_MICROS,
    MARCH_15,
    MAY_15,
    PACK_MICROS,
    PRO_MICROS,
    SESSION_MICROS,
    Billing,
)

from tollhouse.billing import InvoiceView
from tollhouse.billing.models import Invoice
from tollhouse.events import service as events
from tollhouse.events.models import Event
from tollhouse.ledger import Ledger
from tollhouse.storage import Database
from tollhouse.subscriptions import service as subscriptions
from tollhouse.subscriptions.proration import prorate


def kinds(invoice: InvoiceView) -> list[tuple[str, int, int]]:
    """`(kind, quantity, amount)` of each line, in order."""
    return [(line.kind, line.quantity, line.amount_micros) for line in invoice.lines]


class TestWhatAnInvoiceBills:
    async def test_a_new_subscription_is_billed_its_first_fee_in_advance(
        self, books: Billing
    ) -> None:
        customer = await books.customer("basic")

        report = await books.close()

        (invoice,) = await books.invoices(customer)
        assert report.invoices_finalized == ("TH-000001",)
        assert (invoice.number, invoice.status, invoice.total_micros) == (
            "TH-000001",
            "open",
            BASIC_MICROS,
        )
        assert kinds(invoice) == [("subscription_fee", 1, BASIC_MICROS)]
        fee = invoice.lines[0]
        assert (fee.period_start, fee.period_end) == (MARCH_15, APRIL_15)
        assert (invoice.period_start, invoice.period_end) == (MARCH_15, MARCH_15)
        assert (invoice.customer_name, invoice.customer_email) == ("Ada", "ada@example.com")

    async def test_the_next_period_bills_its_fee_and_the_last_periods_prorations(
        self, books: Billing
    ) -> None:
        customer = await books.customer("basic")
        await books.close()
        books.clock.set(MARCH_15 + timedelta(days=10))
        async with books.db.transaction() as session:
            await subscriptions.change_plan(
                session, customer, "pro", catalog=books.catalog, clock=books.clock
            )
        books.clock.set(APRIL_15 + timedelta(minutes=1))

        await books.close()

        first, second = await books.invoices(customer)
        lines = prorate(
            old_price_micros=BASIC_MICROS,
            new_price_micros=PRO_MICROS,
            period_start=MARCH_15,
            period_end=APRIL_15,
            at=MARCH_15 + timedelta(days=10),
        )
        assert kinds(second) == [
            ("proration_credit", 1, lines.credit_micros),
            ("proration_charge", 1, lines.charge_micros),
            ("subscription_fee", 1, PRO_MICROS),
        ]
        assert second.total_micros == lines.net_micros + PRO_MICROS
        assert (second.period_start, second.period_end) == (MARCH_15, APRIL_15)
        assert (first.number, second.number) == ("TH-000001", "TH-000002")

    async def test_wallet_purchases_are_listed_and_netted_and_only_the_fee_is_taxed(
        self, books: Billing
    ) -> None:
        customer = await books.customer("basic", country="DE", wallet_micros=20 * SESSION_MICROS)
        await books.close()
        await books.session_fee(customer, "s1")
        books.clock.advance(86_400 + 1)
        await books.session_fee(customer, "s2")
        await books.pack(customer, "p1")
        books.clock.set(APRIL_15)

        await books.close()

        _, invoice = await books.invoices(customer)
        tax = 1_710_000  # 19 % of $9.00
        assert kinds(invoice) == [
            ("subscription_fee", 1, BASIC_MICROS),
            ("session_fee", 2, 2 * SESSION_MICROS),
            ("session_pack", 1, PACK_MICROS),
            ("credits_applied", 1, -(2 * SESSION_MICROS + PACK_MICROS)),
            ("tax", 1, tax),
        ]
        assert [line.description for line in invoice.lines[1:3]] == [
            "Session: day",
            "Session pack: day, 5 sessions",
        ]
        assert (invoice.subtotal_micros, invoice.tax_micros) == (BASIC_MICROS, tax)
        assert invoice.total_micros == sum(line.amount_micros for line in invoice.lines)
        assert (invoice.tax_country, invoice.tax_rate) == ("DE", "0.19")

    async def test_a_customer_with_nothing_to_bill_gets_no_invoice_and_no_number(
        self, books: Billing
    ) -> None:
        free = await books.customer("free")
        paying = await books.customer("basic")

        await books.close()
        books.clock.set(APRIL_15)
        await books.close()

        assert await books.invoices(free) == []
        assert [i.number for i in await books.invoices(paying)] == ["TH-000001", "TH-000002"]

    async def test_an_invoice_of_zero_is_issued_and_paid_at_once(self, books: Billing) -> None:
        customer = await books.customer("free", wallet_micros=5 * SESSION_MICROS)
        await books.close()
        await books.session_fee(customer, "s1")
        books.clock.set(APRIL_15)

        await books.close()

        (invoice,) = await books.invoices(customer)
        assert (invoice.total_micros, invoice.status) == (0, "paid")
        assert invoice.paid_at == APRIL_15
        async with books.db.sessions() as session:
            page = await events.list_events(session, customer_id=customer)
        assert [e.type for e in page.events] == [
            "session.started",
            "invoice.finalized",
            "invoice.paid",
        ]
        assert page.events[1].data["number"] == invoice.number


class TestExactlyOnce:
    async def test_closing_again_changes_nothing(self, books: Billing) -> None:
        customer = await books.customer("basic")
        await books.close()
        again = await books.close()

        assert (again.invoices_created, again.invoices_finalized) == ((), ())
        assert len(await books.invoices(customer)) == 1

    async def test_a_server_down_for_two_periods_catches_up_one_invoice_each(
        self, books: Billing
    ) -> None:
        customer = await books.customer("basic")
        books.clock.set(MAY_15 + timedelta(days=3))

        report = await books.close()

        invoices = await books.invoices(customer)
        assert report.invoices_finalized == ("TH-000001", "TH-000002", "TH-000003")
        assert [(i.period_start, i.period_end) for i in invoices] == [
            (MARCH_15, MARCH_15),
            (MARCH_15, APRIL_15),
            (APRIL_15, MAY_15),
        ]
        assert [i.total_micros for i in invoices] == [BASIC_MICROS] * 3
        fees = [(i.lines[0].period_start, i.lines[0].period_end) for i in invoices]
        assert fees == [
            (MARCH_15, APRIL_15),
            (APRIL_15, MAY_15),
            (MAY_15, MAY_15.replace(month=6)),
        ]

    async def test_a_purchase_committed_after_its_period_closed_is_billed_next(
        self, books: Billing
    ) -> None:
        customer = await books.customer("free", wallet_micros=5 * SESSION_MICROS)
        books.clock.set(APRIL_15 + timedelta(seconds=5))
        await books.close()  # closes April 15 before the purchase below is written
        books.clock.set(APRIL_15 - timedelta(seconds=10))
        await books.session_fee(customer, "late")  # its clock read before the boundary
        books.clock.set(MAY_15)

        await books.close()

        (invoice,) = await books.invoices(customer)
        assert (invoice.period_start, invoice.period_end) == (APRIL_15, MAY_15)
        assert kinds(invoice) == [
            ("session_fee", 1, SESSION_MICROS),
            ("credits_applied", 1, -SESSION_MICROS),
        ]


async def concurrent_closes(books: Billing, other: Database, other_ledger: Ledger) -> None:
    await asyncio.gather(
        books.close(),
        books.close(other, other_ledger),
        books.close(),
        books.close(other, other_ledger),
    )


class TestConcurrentCloses:
    CUSTOMERS = 6

    async def test_totals_are_exact_and_numbers_gapless_under_concurrent_closes(
        self, books: Billing
    ) -> None:
        """Two processes (two engines and ledger writers) close the same periods at once,
        twice each: one invoice per customer and period, numbered 1..n without a gap or a
        repeat, each total the exact sum of its lines."""
        plans = ["basic", "pro", "free"] * (self.CUSTOMERS // 3)
        ids = [
            await books.customer(
                plan, country="DE" if n % 2 else None, wallet_micros=5 * SESSION_MICROS
            )
            for n, plan in enumerate(plans)
        ]
        for n, customer in enumerate(ids):
            await books.session_fee(customer, f"s{n}")
        other = Database(books.db.url)
        books.clock.set(APRIL_15 + timedelta(hours=1))
        try:
            async with Ledger(other, clock=books.clock) as other_ledger:
                await concurrent_closes(books, other, other_ledger)
        finally:
            await other.dispose()

        invoices = await books.invoices()
        per_period = [(i.customer_id, i.period_end) for i in invoices]
        assert len(per_period) == len(set(per_period))
        paying = [c for c, plan in zip(ids, plans, strict=True) if plan != "free"]
        assert len(invoices) == 2 * len(paying) + (len(ids) - len(paying))
        sequences = sorted(int(i.number.removeprefix("TH-")) for i in invoices if i.number)
        assert sequences == list(range(1, len(invoices) + 1))
        for invoice in invoices:
            assert invoice.total_micros == sum(line.amount_micros for line in invoice.lines)
            assert invoice.subtotal_micros + invoice.tax_micros == invoice.total_micros
            fee = {"basic": BASIC_MICROS, "pro": PRO_MICROS}.get(
                plans[ids.index(invoice.customer_id)], 0
            )
            taxed = fee * 19 // 100 if invoice.tax_country == "DE" else 0
            assert invoice.total_micros == fee + taxed
        async with books.db.sessions() as session:
            finalized = await session.scalar(
                select(func.count()).where(Event.type == "invoice.finalized")
            )
            drafts = await session.scalar(select(func.count()).where(Invoice.status == "draft"))
        assert (finalized, drafts) == (len(invoices), 0)
