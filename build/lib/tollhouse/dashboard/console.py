"""The operator console: customers (search, pages) and a customer's page (its overview, keys
and invoices; grant credits, revoke a key). Operators only: anyone else gets 403."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from tollhouse.billing import service as billing
from tollhouse.customers import service as customers
from tollhouse.dashboard.portal import overview_of
from tollhouse.dashboard.web import forbidden, form_of, page, router, runtime_of, to_login, viewer
from tollhouse.errors import TollhouseError
from tollhouse.ids import new_id
from tollhouse.keys import service as keys
from tollhouse.money import to_micros

PAGE = 50
"""Customers per page."""


@router.get("/console")
async def customers_page(request: Request, q: str = "", page_number: int = 1) -> Response:
    """Customers by name, 50 a page; `q` matches a part of the name, email or id."""
    signed = await viewer(request)
    if signed is None:
        return to_login()
    if not signed.user.is_operator:
        return forbidden(request, signed)
    runtime = runtime_of(request)
    number = max(1, page_number)
    async with runtime.db.transaction() as session:
        rows, total = await customers.search(session, q, limit=PAGE, offset=(number - 1) * PAGE)
    pages = max(1, -(-total // PAGE))
    return page(request, "console.html", signed, customers=rows, q=q, page_number=number,
                pages=pages, total=total)  # fmt: skip


async def _customer_page(request: Request, customer_id: str, error: str = "") -> Response:
    signed = await viewer(request)
    assert signed is not None
    runtime = runtime_of(request)
    try:
        async with runtime.db.transaction() as session:
            shown = await overview_of(
                session, customer_id, catalog=runtime.catalog, clock=runtime.clock, days=30
            )
            listed = await keys.list_keys(session, customer_id=customer_id)
            invoices = await billing.list_invoices(session, customer_id=customer_id, limit=20)
    except TollhouseError as failure:
        return page(request, "message.html", signed, status=failure.status,
                    title=failure.title, message=failure.detail)  # fmt: skip
    return page(request, "customer.html", signed, keys=listed, invoices=invoices,
                now=runtime.clock.now(), error=error, grant_key=new_id("dgrant"), **shown)  # fmt: skip


@router.get("/console/customers/{customer_id}")
async def customer_page(request: Request, customer_id: str) -> Response:
    signed = await viewer(request)
    if signed is None:
        return to_login()
    if not signed.user.is_operator:
        return forbidden(request, signed)
    return await _customer_page(request, customer_id)


@router.post("/console/customers/{customer_id}/grant")
async def grant(request: Request, customer_id: str) -> Response:
    """Grant credits: an amount in the catalog's currency (`12.50`), once per form (the
    form's `idempotency_key`)."""
    signed = await viewer(request)
    if signed is None:
        return to_login()
    form = await form_of(request, signed)
    if form is None or not signed.user.is_operator:
        return forbidden(request, signed)
    runtime = runtime_of(request)
    try:
        micros = to_micros(form.get("amount", ""))
        await runtime.ledger.grant(
            customer_id, micros, idempotency_key=form.get("idempotency_key", ""),
            source="manual", description=form.get("description", "")[:500] or "dashboard grant",
            currency=runtime.catalog.currency,
        )  # fmt: skip
    except (TollhouseError, ValueError) as failure:
        detail = failure.detail if isinstance(failure, TollhouseError) else str(failure)
        return await _customer_page(request, customer_id, error=detail)
    await runtime.invalidate_customer(customer_id)
    return RedirectResponse(f"/dashboard/console/customers/{customer_id}", status_code=303)


@router.post("/console/customers/{customer_id}/keys/{key_id}/revoke")
async def revoke(request: Request, customer_id: str, key_id: str) -> Response:
    signed = await viewer(request)
    if signed is None:
        return to_login()
    if await form_of(request, signed) is None or not signed.user.is_operator:
        return forbidden(request, signed)
    runtime = runtime_of(request)
    async with runtime.db.transaction() as session:
        await keys.revoke_key(session, key_id, clock=runtime.clock, customer_id=customer_id)
    await runtime.invalidate_key(key_id)
    return RedirectResponse(f"/dashboard/console/customers/{customer_id}", status_code=303)
