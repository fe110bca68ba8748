"""Reading invoices and changing their status, on SQLite and PostgreSQL: tenancy, Stripe's
lifecycle, events, and numbers given back by a rolled-back transaction."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from tests.unit.billing.conftest import APRIL_15, BASIC_MICROS, Billing

from tollhouse.billing import InvalidInvoiceTransition, InvoiceNotFound
from tollhouse.billing import service as billing
from tollhouse.billing.models import DocumentKind
from tollhouse.billing.service import documents
from tollhouse.events import service as events


async def one_invoice(books: Billing) -> tuple[str, str]:
    """A customer with one open invoice; (customer id, invoice id)."""
    customer = await books.customer("basic")
    await books.close()
    (invoice,) = await books.invoices(customer)
    return customer, invoice.id


async def event_types(books: Billing, customer_id: str) -> list[str]:
    async with books.db.sessions() as session:
        page = await events.list_events(session, customer_id=customer_id)
    return [e.type for e in page.events]


class TestReads:
    async def test_another_customers_invoice_is_not_found(self, books: Billing) -> None:
        owner, invoice_id = await one_invoice(books)
        other = await books.customer("basic")
        async with books.db.sessions() as session:
            mine = await billing.get_invoice(session, invoice_id, customer_id=owner)
            with pytest.raises(InvoiceNotFound):
                await billing.get_invoice(session, invoice_id, customer_id=other)
            with pytest.raises(InvoiceNotFound):
                await billing.get_invoice(session, "in_unknown")
        assert mine.total_micros == BASIC_MICROS

    async def test_lists_are_newest_first_per_customer_and_page_by_id(self, books: Billing) -> None:
        first, _ = await one_invoice(books)
        second = await books.customer("basic")
        books.clock.set(APRIL_15)
        await books.close()
        async with books.db.sessions() as session:
            everyone = await billing.list_invoices(session)
            page = await billing.list_invoices(session, limit=2)
            rest = await billing.list_invoices(session, before=page[-1].id)
            theirs = await billing.list_invoices(session, customer_id=second)
            notes = await billing.list_invoices(session, kind=DocumentKind.CREDIT_NOTE)
        assert [i.id for i in everyone] == sorted((i.id for i in everyone), reverse=True)
        assert [i.id for i in page + rest] == [i.id for i in everyone]
        assert {i.customer_id for i in theirs} == {second} and len(theirs) == 2
        assert {i.customer_id for i in everyone} == {first, second}
        assert notes == []


class TestStatusChanges:
    async def test_an_open_invoice_is_paid_once_with_its_reference_and_event(
        self, books: Billing
    ) -> None:
        customer, invoice_id = await one_invoice(books)
        books.clock.advance(60)
        async with books.db.transaction() as session:
            paid = await billing.mark_paid(
                session, invoice_id, clock=books.clock, payment_reference="pi_123"
            )
        async with books.db.transaction() as session:
            again = await billing.mark_paid(session, invoice_id, clock=books.clock)

        assert (paid.status, paid.paid_at, paid.payment_reference) == (
            "paid",
            books.clock.now(),
            "pi_123",
        )
        assert again == paid
        assert await event_types(books, customer) == ["invoice.finalized", "invoice.paid"]

    async def test_uncollectible_may_still_be_paid_or_voided_but_paid_is_final(
        self, books: Billing
    ) -> None:
        customer, invoice_id = await one_invoice(books)
        async with books.db.transaction() as session:
            lost = await billing.mark_uncollectible(session, invoice_id, clock=books.clock)
            voided = await billing.void(session, invoice_id, clock=books.clock)
        _, paid_id = await one_invoice(books)
        async with books.db.transaction() as session:
            await billing.mark_paid(session, paid_id, clock=books.clock)
        async with books.db.transaction() as session:
            with pytest.raises(InvalidInvoiceTransition) as refused:
                await billing.void(session, paid_id, clock=books.clock)
            with pytest.raises(InvalidInvoiceTransition):
                await billing.mark_paid(session, invoice_id, clock=books.clock)

        assert (lost.status, voided.status, voided.number) == ("uncollectible", "void", lost.number)
        assert refused.value.extra == {
            "invoice_id": paid_id,
            "invoice_status": "paid",
            "requested": "void",
        }
        assert await event_types(books, customer) == [
            "invoice.finalized",
            "invoice.marked_uncollectible",
            "invoice.voided",
        ]

    async def test_two_concurrent_payments_record_one(self, books: Billing) -> None:
        customer, invoice_id = await one_invoice(books)

        async def pay(reference: str) -> str:
            async with books.db.transaction() as session:
                view = await billing.mark_paid(
                    session, invoice_id, clock=books.clock, payment_reference=reference
                )
            return str(view.payment_reference)

        references = await asyncio.gather(pay("a"), pay("b"))

        assert references[0] == references[1]
        assert (await event_types(books, customer)).count("invoice.paid") == 1


class TestNumbers:
    async def test_a_number_taken_by_a_rolled_back_transaction_is_given_again(
        self, books: Billing
    ) -> None:
        await books.customer("basic")
        with pytest.raises(RuntimeError):
            async with books.db.transaction() as session:
                assert await documents.take_number(session, DocumentKind.INVOICE) == 1
                raise RuntimeError("crash before the commit")

        await books.close()

        assert [i.number for i in await books.invoices()] == ["TH-000001"]

    async def test_each_series_counts_on_its_own_with_its_prefix(self, books: Billing) -> None:
        await books.customer("basic")
        async with books.db.transaction() as session:
            assert await documents.take_number(session, DocumentKind.CREDIT_NOTE) == 1
        books.terms = books.terms.__class__(invoice_prefix="2026/", tax_rates={})
        books.clock.set(APRIL_15 - timedelta(days=1))

        await books.close()

        assert [i.number for i in await books.invoices()] == ["2026/000001"]
