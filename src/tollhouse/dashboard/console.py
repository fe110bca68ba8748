"""The operator console: customers (search, sort, pages, balances) and a customer's page (its
overview, credits, keys, sessions, invoices, events and users; grant credits, revoke a grant,
revoke a key). Plan changes and invitations are in `console_accounts`, the catalog in
`console_catalog`, analytics in `analytics`.

Operators only: a signed-in member or admin gets 404 for every console page and form (the
console does not exist for them), a signed-out visitor the login page.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from tollhouse.billing import service as billing
from tollhouse.customers import service as customers
from tollhouse.dashboard.portal import overview_of
from tollhouse.dashboard.web import forbidden, form_of, page, router, runtime_of, to_login, viewer
from tollhouse.errors import TollhouseError
from tollhouse.events import service as events
from tollhouse.ids import new_id
from tollhouse.keys import service as keys
from tollhouse.ledger import service as ledger
from tollhouse.money import to_micros
from tollhouse.sessions import service as sessions
from tollhouse.users import SignedIn
from tollhouse.users import service as users

PAGE = 50
"""Customers per page."""
RECENT = 20
"""Sessions, invoices and events a customer's page lists (the latest)."""


def not_found(request: Request, signed: SignedIn | None) -> Response:
    """The 404 page (what a console page is to anyone but an operator)."""
    return page(request, "message.html", signed, status=404, title="Not found",
                message="There is no such page.")  # fmt: skip


async def operator(request: Request) -> SignedIn | Response:
    """The signed-in operator, or the answer for anyone else: the login page when signed
    out, 404 for a member or admin."""
    signed = await viewer(request)
    if signed is None:
        return to_login()
    if not signed.user.is_operator:
        return not_found(request, signed)
    return signed


async def operator_form(request: Request) -> tuple[SignedIn, Mapping[str, str]] | Response:
    """The signed-in operator and its posted form, or the answer for anyone else (as
    `operator`; 403 for a form without the session's CSRF token)."""
    signed = await operator(request)
    if isinstance(signed, Response):
        return signed
    form = await form_of(request, signed)
    if form is None:
        return forbidden(request, signed)
    return signed, form


def back_to(customer_id: str) -> RedirectResponse:
    return RedirectResponse(f"/dashboard/console/customers/{customer_id}", status_code=303)


def failure_detail(failure: Exception) -> str:
    """What a refused form says: the error's detail (`TollhouseError`) or message."""
    return failure.detail if isinstance(failure, TollhouseError) else str(failure)


@router.get("/console")
async def customers_page(
    request: Request, q: str = "", sort: str = "name", page_number: int = 1
) -> Response:
    """Customers 50 a page with their balances; `q` matches a part of the name, email or id;
    `sort` is one of `customers.SORTS` (name, newest, oldest)."""
    signed = await operator(request)
    if isinstance(signed, Response):
        return signed
    runtime = runtime_of(request)
    number = max(1, page_number)
    sort = sort if sort in customers.SORTS else "name"
    async with runtime.db.transaction() as session:
        rows, total = await customers.search(
            session, q, limit=PAGE, offset=(number - 1) * PAGE, sort=sort
        )
        balances = await ledger.available_by_customer(
            session, [c.id for c in rows], currency=runtime.catalog.currency,
            now=runtime.clock.now(),
        )  # fmt: skip
    pages = max(1, -(-total // PAGE))
    return page(request, "console.html", signed, customers=rows, balances=balances, q=q,
                sort=sort, sorts=customers.SORTS, page_number=number, pages=pages,
                total=total)  # fmt: skip


async def customer_view(
    request: Request, signed: SignedIn, customer_id: str, status: int = 200, **more: Any
) -> Response:
    """A customer's page for `signed` (an operator), with `more` (`error`, `invite_link`)."""
    runtime = runtime_of(request)
    try:
        async with runtime.db.transaction() as session:
            shown = await overview_of(
                session, customer_id, catalog=runtime.catalog, clock=runtime.clock, days=30
            )
            listed = await keys.list_keys(session, customer_id=customer_id)
            invoices = await billing.list_invoices(session, customer_id=customer_id, limit=RECENT)
            ran = await sessions.list_sessions(
                session, clock=runtime.clock, customer_id=customer_id, limit=RECENT
            )
            happened = await events.recent_events(session, customer_id=customer_id, limit=RECENT)
            logins = await users.list_users(session, customer_id=customer_id)
    except TollhouseError as failure:
        return page(request, "message.html", signed, status=failure.status,
                    title=failure.title, message=failure.detail)  # fmt: skip
    return page(
        request, "customer.html", signed, status=status, keys=listed, invoices=invoices,
        sessions=ran, events=happened, users=logins, plans=list(runtime.catalog.plans),
        now=runtime.clock.now(), grant_key=new_id("dgrant"), error=more.pop("error", ""),
        invite_link=more.pop("invite_link", ""), **shown,
    )  # fmt: skip


@router.get("/console/customers/{customer_id}")
async def customer_page(request: Request, customer_id: str) -> Response:
    signed = await operator(request)
    if isinstance(signed, Response):
        return signed
    return await customer_view(request, signed, customer_id)


@router.post("/console/customers/{customer_id}/grant")
async def grant(request: Request, customer_id: str) -> Response:
    """Grant credits: an amount in the catalog's currency (`12.50`), once per form (the
    form's `idempotency_key`)."""
    posted = await operator_form(request)
    if isinstance(posted, Response):
        return posted
    signed, form = posted
    runtime = runtime_of(request)
    try:
        async with runtime.db.transaction() as session:
            await customers.get(session, customer_id)
        micros = to_micros(form.get("amount", ""))
        await runtime.ledger.grant(
            customer_id, micros, idempotency_key=form.get("idempotency_key", ""),
            source="manual", description=form.get("description", "")[:500] or "dashboard grant",
            currency=runtime.catalog.currency,
        )  # fmt: skip
    except (TollhouseError, ValueError) as failure:
        return await customer_view(request, signed, customer_id, error=failure_detail(failure))
    await runtime.invalidate_customer(customer_id)
    return back_to(customer_id)


@router.post("/console/customers/{customer_id}/grants/{grant_id}/revoke")
async def revoke_grant(request: Request, customer_id: str, grant_id: str) -> Response:
    """Revoke a grant (as `DELETE /v1/grants/{id}`): the rest of the lot not held by a call
    in flight goes back; what was spent stays spent."""
    posted = await operator_form(request)
    if isinstance(posted, Response):
        return posted
    signed, _ = posted
    runtime = runtime_of(request)
    try:
        await runtime.ledger.revoke_grant(grant_id, customer_id=customer_id)
    except TollhouseError as failure:
        return await customer_view(request, signed, customer_id, error=failure.detail)
    await runtime.invalidate_customer(customer_id)
    return back_to(customer_id)


@router.post("/console/customers/{customer_id}/keys/{key_id}/revoke")
async def revoke_key(request: Request, customer_id: str, key_id: str) -> Response:
    posted = await operator_form(request)
    if isinstance(posted, Response):
        return posted
    signed, _ = posted
    runtime = runtime_of(request)
    try:
        async with runtime.db.transaction() as session:
            await keys.revoke_key(session, key_id, clock=runtime.clock, customer_id=customer_id)
    except TollhouseError as failure:
        return await customer_view(request, signed, customer_id, error=failure.detail)
    await runtime.invalidate_key(key_id)
    return back_to(customer_id)
