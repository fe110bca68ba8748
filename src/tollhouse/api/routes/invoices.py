"""Invoices and refunds: list and read invoices (JSON, an HTML page, a PDF), close the
billing periods now, record a payment, void, mark uncollectible (operators); refund a
captured charge as a credit note (operators).

A customer key reads its own invoices and credit notes (another customer's id answers 404,
as if it did not exist); an operator key reads every customer's and filters by
`customer_id`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query, Response, status
from fastapi.responses import HTMLResponse
from pydantic import ConfigDict, Field

from tollhouse.api import problems
from tollhouse.api.deps import Reader, RuntimeDep, SessionDep, require_operator
from tollhouse.api.schemas import RequestBody, ResponseBody
from tollhouse.billing import (
    PAGE_POLICY,
    DocumentKind,
    InvoiceStatus,
    InvoiceView,
    render_html,
    render_pdf,
)
from tollhouse.billing import service as billing
from tollhouse.errors import NotFound
from tollhouse.keys import Principal
from tollhouse.server.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["invoices"], responses=problems.responses(401, 403))

MAX_MICROS = 10**17
IdQuery = Query(default=None, max_length=32)


class LineOut(ResponseBody):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    """`subscription_fee`, `proration_credit`, `proration_charge`, `session_fee`,
    `session_pack`, `credits_applied`, `credit_purchase`, `payment_applied`, `tax`, or
    `refund` (credit notes)."""
    description: str
    quantity: int
    unit_amount_micros: int
    amount_micros: int
    """`quantity * unit_amount_micros`; negative is a credit."""
    period_start: datetime | None
    period_end: datetime | None


class InvoiceOut(ResponseBody):
    model_config = ConfigDict(from_attributes=True)

    id: str
    """`in_...` for an invoice, `cn_...` for a credit note."""
    kind: str
    """`invoice` or `credit_note`."""
    number: str | None
    """`TH-000001` (credit notes `CN-000001`): sequential without gaps; None on a draft."""
    customer_id: str
    status: str
    """`draft`, `open`, `paid`, `void` or `uncollectible`."""
    currency: str
    period_start: datetime | None
    """The previous boundary: start of the usage period billed (None on a credit note)."""
    period_end: datetime | None
    """The boundary the invoice closes; the fee it bills is for the period starting here."""
    subtotal_micros: int
    tax_micros: int
    total_micros: int
    """The sum of the lines: `subtotal_micros + tax_micros`."""
    tax_country: str | None
    tax_rate: str | None
    """The rate applied, a decimal fraction (`"0.19"`); None without tax."""
    customer_name: str
    customer_email: str | None
    credited_invoice_id: str | None
    """Credit notes: the invoice that billed what was refunded, if one did."""
    payment_reference: str | None
    created_at: datetime
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    marked_uncollectible_at: datetime | None
    lines: list[LineOut]


class CloseOut(ResponseBody):
    customers: int
    """Customers with a period closed now."""
    invoices_created: list[str]
    invoices_finalized: list[str]
    """The numbers given now."""


class PaymentIn(RequestBody):
    payment_reference: str | None = Field(default=None, min_length=1, max_length=200)
    """What paid it: a payment's id, a bank transfer's reference."""


class RefundIn(RequestBody):
    hold_id: str = Field(min_length=1, max_length=32)
    """The captured hold to give back: a session's fee (`hold_id` of the session), a pack,
    a call (`hold_id` in the customer's transactions)."""
    amount_micros: int | None = Field(default=None, gt=0, le=MAX_MICROS)
    """Micros to give back; default: all the capture took that is not refunded yet."""
    reason: str = Field(default="", max_length=500)
    """Printed on the credit note."""
    idempotency_key: str = Field(min_length=1, max_length=128)
    """The same key again answers the same refund (200) and gives nothing more; for another
    hold or amount it is refused (422 `idempotency-key-reused`)."""


class RefundOut(ResponseBody):
    model_config = ConfigDict(from_attributes=True)

    id: str
    customer_id: str
    hold_id: str
    amount_micros: int
    currency: str
    reason: str
    status: str
    """`succeeded` once the credits are back in the wallet (`pending` only if that was
    interrupted; the server finishes it)."""
    grant_id: str | None
    """The ledger grant that gave the credits back (source `refund`)."""
    credit_note: InvoiceOut
    created_at: datetime
    completed_at: datetime | None


def _out(view: InvoiceView) -> InvoiceOut:
    return InvoiceOut.model_validate(view)


def _owner(principal: Principal, customer_id: str | None) -> str | None:
    """Whose invoices a list shows: the customer key's own (another id answers 404), or an
    operator's filter (None: everyone's)."""
    if principal.is_operator:
        return customer_id
    if customer_id not in (None, "me", principal.customer_id):
        raise NotFound(f"customer '{customer_id}' not found")
    return principal.customer_id


async def _invoice(runtime: Runtime, principal: Principal, invoice_id: str) -> InvoiceView:
    """The invoice, read in a session closed before the caller renders it (SQLite has one
    connection: a PDF's layout must not hold it)."""
    async with runtime.db.sessions() as session:
        return await billing.get_invoice(session, invoice_id, customer_id=principal.customer_id)


@router.get("/invoices", responses=problems.responses(404, 422))
async def list_invoices(
    principal: Reader,
    session: SessionDep,
    customer_id: str | None = IdQuery,
    kind: Literal["invoice", "credit_note"] | None = None,
    invoice_status: Literal["draft", "open", "paid", "void", "uncollectible"] | None = Query(
        default=None, alias="status"
    ),
    limit: int = Query(default=50, ge=1, le=billing.MAX_PAGE),
    before: str | None = Query(
        default=None, max_length=32, description="page: invoices older than this id"
    ),
) -> list[InvoiceOut]:
    """Invoices and credit notes with their lines, newest first: the customer's own, or for
    an operator everyone's (or `customer_id`'s)."""
    views = await billing.list_invoices(
        session,
        customer_id=_owner(principal, customer_id),
        kind=None if kind is None else DocumentKind(kind),
        status=None if invoice_status is None else InvoiceStatus(invoice_status),
        limit=limit,
        before=before,
    )
    return [_out(view) for view in views]


@router.post("/billing/close", responses=problems.responses(422))
async def close_periods(principal: Reader, runtime: RuntimeDep) -> CloseOut:
    """Run the period close now (operators; the server runs it every 30 s): roll the
    subscriptions whose period ended, invoice every boundary crossed, number the drafts."""
    require_operator(principal)
    report = await runtime.close_periods()
    return CloseOut(
        customers=report.customers,
        invoices_created=list(report.invoices_created),
        invoices_finalized=list(report.invoices_finalized),
    )


@router.get(
    "/invoices/{invoice_id}.html",
    response_class=HTMLResponse,
    responses=problems.responses(404, 422),
)
async def invoice_page(invoice_id: str, principal: Reader, runtime: RuntimeDep) -> HTMLResponse:
    """The invoice (or credit note) as an HTML page, from the same template as its PDF."""
    view = await _invoice(runtime, principal, invoice_id)
    page = render_html(view, issuer=runtime.billing_terms.issuer)
    return HTMLResponse(page, headers={"Content-Security-Policy": PAGE_POLICY})


class PDFResponse(Response):
    media_type = "application/pdf"


@router.get(
    "/invoices/{invoice_id}.pdf",
    response_class=PDFResponse,
    responses={
        200: {
            "description": "The PDF (A4)",
            "content": {"application/pdf": {"schema": {"type": "string", "format": "binary"}}},
        },
        **problems.responses(404, 422),
    },
)
async def invoice_pdf(invoice_id: str, principal: Reader, runtime: RuntimeDep) -> PDFResponse:
    """The invoice (or credit note) as a PDF laid out from its HTML page (WeasyPrint)."""
    view = await _invoice(runtime, principal, invoice_id)
    pdf = await render_pdf(view, issuer=runtime.billing_terms.issuer)
    name = view.number or view.id
    return PDFResponse(pdf, headers={"Content-Disposition": f'inline; filename="{name}.pdf"'})


@router.get("/invoices/{invoice_id}", responses=problems.responses(404, 422))
async def get_invoice(invoice_id: str, principal: Reader, runtime: RuntimeDep) -> InvoiceOut:
    """One invoice or credit note with its lines (`.html` and `.pdf` render it)."""
    return _out(await _invoice(runtime, principal, invoice_id))


@router.post("/invoices/{invoice_id}/pay", responses=problems.responses(400, 404, 409, 413, 422))
async def pay_invoice(
    invoice_id: str,
    principal: Reader,
    runtime: RuntimeDep,
    body: PaymentIn | None = None,
) -> InvoiceOut:
    """Record a payment of an open (or uncollectible) invoice (operators): `paid`, with
    `invoice.paid`; a paid one is answered as it is; 409 `invalid-invoice-transition` for a
    draft, a void invoice or a credit note."""
    require_operator(principal)
    async with runtime.db.transaction() as session:
        view = await billing.mark_paid(
            session,
            invoice_id,
            clock=runtime.clock,
            payment_reference=None if body is None else body.payment_reference,
        )
    return _out(view)


@router.post("/invoices/{invoice_id}/void", responses=problems.responses(404, 409, 422))
async def void_invoice(invoice_id: str, principal: Reader, runtime: RuntimeDep) -> InvoiceOut:
    """Void an open or uncollectible invoice (operators); it keeps its number."""
    require_operator(principal)
    async with runtime.db.transaction() as session:
        view = await billing.void(session, invoice_id, clock=runtime.clock)
    return _out(view)


@router.post(
    "/invoices/{invoice_id}/mark-uncollectible", responses=problems.responses(404, 409, 422)
)
async def mark_uncollectible(invoice_id: str, principal: Reader, runtime: RuntimeDep) -> InvoiceOut:
    """Mark an open invoice as not expected to be paid (operators)."""
    require_operator(principal)
    async with runtime.db.transaction() as session:
        view = await billing.mark_uncollectible(session, invoice_id, clock=runtime.clock)
    return _out(view)


@router.post(
    "/refunds",
    status_code=status.HTTP_201_CREATED,
    responses=problems.replay(RefundOut) | problems.responses(400, 404, 409, 413, 422),
)
async def create_refund(
    body: RefundIn, principal: Reader, runtime: RuntimeDep, response: Response
) -> RefundOut:
    """Give a captured charge back to the customer's wallet (operators): 201 with the refund
    and its credit note. The capture stays in the ledger; a grant (source `refund`) gives
    the micros back. 409 `charge-not-refundable` for a hold not captured,
    `refund-exceeds-charge` beyond what is left to refund; the same key again answers 200."""
    require_operator(principal)
    done = await billing.refund(
        runtime.db,
        runtime.ledger,
        terms=runtime.billing_terms,
        clock=runtime.clock,
        hold_id=body.hold_id,
        idempotency_key=body.idempotency_key,
        amount_micros=body.amount_micros,
        reason=body.reason,
    )
    if done.replayed:
        response.status_code = status.HTTP_200_OK
    return RefundOut.model_validate(done)
