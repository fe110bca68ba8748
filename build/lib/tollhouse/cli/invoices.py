"""`tollhouse invoices list|show|pdf|html|close|pay|void|uncollectible` and `tollhouse refunds
create`."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import typer

from tollhouse.billing import (
    BillingTerms,
    DocumentKind,
    InvoiceStatus,
    InvoiceView,
    render_html,
    render_pdf,
)
from tollhouse.billing import service as billing
from tollhouse.catalog import service as catalogs
from tollhouse.cli.common import JsonOption, Services, console, emit, run
from tollhouse.ids import new_id
from tollhouse.server.invalidation import customer_message
from tollhouse.subscriptions import service as subscriptions

invoices_app = typer.Typer(help="Invoices and credit notes.", no_args_is_help=True)
refunds_app = typer.Typer(help="Refunds (credit notes).", no_args_is_help=True)

COLUMNS = ["id", "number", "kind", "customer_id", "status", "period_end", "total_micros"]
LINE_COLUMNS = ["kind", "description", "quantity", "unit_amount_micros", "amount_micros"]


def _invoice_dict(view: InvoiceView) -> dict[str, Any]:
    return {**dataclasses.asdict(view), "lines": [dataclasses.asdict(li) for li in view.lines]}


def _terms(svc: Services) -> BillingTerms:
    return BillingTerms.from_settings(svc.settings)


async def _get(svc: Services, invoice_id: str) -> InvoiceView:
    async with svc.db.sessions() as session:
        return await billing.get_invoice(session, invoice_id)


@invoices_app.command("list")
def list_(
    customer: str | None = typer.Option(None, help="Only this customer's."),
    kind: DocumentKind | None = typer.Option(None, help="invoice or credit_note."),
    status: InvoiceStatus | None = typer.Option(None),
    limit: int = typer.Option(50, min=1, max=billing.MAX_PAGE),
    as_json: bool = JsonOption,
) -> None:
    """Invoices and credit notes, newest first."""

    async def job(svc: Services) -> list[dict[str, Any]]:
        async with svc.db.sessions() as session:
            views = await billing.list_invoices(
                session, customer_id=customer, kind=kind, status=status, limit=limit
            )
        return [_invoice_dict(view) for view in views]

    emit(run(job), as_json, columns=COLUMNS)


@invoices_app.command("show")
def show(invoice_id: str, as_json: bool = JsonOption) -> None:
    """One invoice or credit note, with its lines."""

    async def job(svc: Services) -> dict[str, Any]:
        return _invoice_dict(await _get(svc, invoice_id))

    shown = run(job)
    if as_json:
        emit(shown, as_json)
        return
    emit(shown, False, columns=[*COLUMNS, "subtotal_micros", "tax_micros", "currency"])
    emit(shown["lines"], False, columns=LINE_COLUMNS, title="lines")


@invoices_app.command("pdf")
def pdf(
    invoice_id: str,
    output: Path | None = typer.Option(None, "--output", "-o", help="Default: <number>.pdf."),
) -> None:
    """Write the invoice as a PDF (the same layout as its HTML page)."""

    async def job(svc: Services) -> Path:
        view = await _get(svc, invoice_id)
        target = output or Path(f"{view.number or view.id}.pdf")
        target.write_bytes(await render_pdf(view, issuer=svc.settings.invoice_issuer))
        return target

    console.print(f"wrote {run(job)}")


@invoices_app.command("html")
def html(invoice_id: str) -> None:
    """Print the invoice as an HTML page."""

    async def job(svc: Services) -> str:
        return render_html(await _get(svc, invoice_id), issuer=svc.settings.invoice_issuer)

    typer.echo(run(job))


@invoices_app.command("close")
def close(as_json: bool = JsonOption) -> None:
    """Roll the subscriptions whose period ended and invoice every boundary crossed (the
    server does this every 30 s); refused when this catalog is not the one in force."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            in_use = await subscriptions.plans_in_use(session)
            await catalogs.require_in_force(session, svc.catalog, plans=in_use, currency=True)
        rolled = await subscriptions.roll_over(
            svc.db, catalog=svc.catalog, clock=svc.clock, ledger=svc.ledger
        )
        for customer_id in rolled.changed_customers:
            await svc.notify(customer_message(customer_id))
        report = await billing.close_periods(
            svc.db, catalog=svc.catalog, terms=_terms(svc), clock=svc.clock
        )
        return {
            "periods_rolled": rolled.periods_rolled,
            "customers": report.customers,
            "invoices_created": list(report.invoices_created),
            "invoices_finalized": list(report.invoices_finalized),
        }

    emit(run(job), as_json)


@invoices_app.command("pay")
def pay(
    invoice_id: str,
    reference: str | None = typer.Option(
        None, "--reference", help="What paid it: a payment id, a transfer's reference."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Record a payment of an open (or uncollectible) invoice."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            view = await billing.mark_paid(
                session, invoice_id, clock=svc.clock, payment_reference=reference
            )
        return _invoice_dict(view)

    emit(run(job), as_json, columns=COLUMNS)


@invoices_app.command("void")
def void(invoice_id: str, as_json: bool = JsonOption) -> None:
    """Void an open or uncollectible invoice (it keeps its number)."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            return _invoice_dict(await billing.void(session, invoice_id, clock=svc.clock))

    emit(run(job), as_json, columns=COLUMNS)


@invoices_app.command("uncollectible")
def uncollectible(invoice_id: str, as_json: bool = JsonOption) -> None:
    """Mark an open invoice as not expected to be paid."""

    async def job(svc: Services) -> dict[str, Any]:
        async with svc.db.transaction() as session:
            view = await billing.mark_uncollectible(session, invoice_id, clock=svc.clock)
        return _invoice_dict(view)

    emit(run(job), as_json, columns=COLUMNS)


@refunds_app.command("create")
def create_refund(
    hold_id: str,
    amount_micros: int | None = typer.Option(
        None, "--amount-micros", min=1, help="Default: all that is left to refund."
    ),
    reason: str = typer.Option("", help="Printed on the credit note."),
    idempotency_key: str | None = typer.Option(
        None, "--idempotency-key", help="Default: a new random key."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Give the captured hold HOLD_ID back to its customer's wallet, with a credit note."""

    async def job(svc: Services) -> dict[str, Any]:
        done = await billing.refund(
            svc.db,
            svc.ledger,
            terms=_terms(svc),
            clock=svc.clock,
            hold_id=hold_id,
            idempotency_key=idempotency_key or new_id("cli"),
            amount_micros=amount_micros,
            reason=reason,
        )
        shown = dataclasses.asdict(done)
        shown["credit_note_number"] = done.credit_note.number
        return shown

    emit(
        run(job),
        as_json,
        columns=["id", "customer_id", "hold_id", "amount_micros", "status", "credit_note_number"],
    )
