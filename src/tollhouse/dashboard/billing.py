"""The customer portal's billing: buy a credit pack or a session pack, change plan, read
invoices and credit notes (HTML and PDF), and the ledger's transactions (filtered, paged,
exported as CSV).

Buying and changing the plan are for the customer's `admin` users: a `member` sees the page,
and its posts answer 403. Each buying form carries its own idempotency key, so a form posted
twice buys once. The same services as the API sell, in the same way:
- a credit pack, a session pack paid by card, or a paid plan without a payment method on
  file: a Stripe Checkout page (`Payments.checkout`, as `POST /v1/checkout`), 303 to its URL;
  without Stripe the page says that an operator grants credits, and offers no button;
- a session pack paid from the wallet: `sessions.buy_pack` (as `POST /v1/sessions/quota/add`);
- any other plan change: `Runtime.change_plan` (a payment method required)
  (as `POST /v1/subscription/change`), then the owed credits are delivered.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from tollhouse.billing import PAGE_POLICY, InvoiceView, render_html, render_pdf
from tollhouse.billing import service as billing
from tollhouse.dashboard.web import forbidden, form_of, member, page, router, runtime_of
from tollhouse.errors import InvalidInput, TollhouseError
from tollhouse.ids import new_id
from tollhouse.ledger import EntryKind, TransactionView
from tollhouse.ledger import service as ledger
from tollhouse.money import decimal_string
from tollhouse.payments import PaymentMethodRequired
from tollhouse.payments import service as payments
from tollhouse.sessions import service as sessions
from tollhouse.sessions.service.lifecycle import check_key
from tollhouse.subscriptions import SubscriptionNotFound
from tollhouse.subscriptions import service as subscriptions
from tollhouse.users import Role, SignedIn

BILLING = "/dashboard/portal/billing"
INVOICES_SHOWN = 50
"""Newest invoices and credit notes listed on the billing page."""
TRANSACTIONS_PAGE = 50
"""Ledger entries per page of the transactions table."""
NO_PROVIDER = (
    "Online payment is not set up here: an operator grants credits and records payments. "
    "Ask yours to add credits or a payment method."
)
NOTICES = {
    "paid": "Thank you: your payment is being confirmed, the credits follow in a moment.",
    "canceled": "Checkout canceled: nothing was charged.",
    "pack": "Session pack bought from your wallet.",
    "plan": "Plan changed: an upgrade applies now, a downgrade at the end of the period.",
}
"""What the billing page says after an action (`?done=<name>`)."""
CSV_COLUMNS = ("id", "created_at", "kind", "account", "amount", "currency", "description",
               "purpose", "hold_id", "transfer_id")  # fmt: skip


async def _billing_page(
    request: Request, signed: SignedIn, customer_id: str, *, status: int = 200, error: str = ""
) -> Response:
    runtime = runtime_of(request)
    catalog = runtime.catalog
    async with runtime.db.transaction() as session:
        wallet = await ledger.balance(session, customer_id, catalog.currency,
                                      now=runtime.clock.now())  # fmt: skip
        try:
            subscription: Any = await subscriptions.get_subscription(session, customer_id)
        except SubscriptionNotFound:
            subscription = None
        documents = await billing.list_invoices(session, customer_id=customer_id,
                                                limit=INVOICES_SHOWN)  # fmt: skip
        quotas = await sessions.quota(session, customer_id, catalog=catalog)
    done = request.query_params.get("done", "")
    return page(
        request, "billing.html", signed, status=status, error=error,
        notice=NOTICES.get(done, ""), wallet=wallet, subscription=subscription,
        plans=sorted(catalog.plans.values(), key=lambda plan: plan.rank),
        credit_packs=list(catalog.credit_packs.values()),
        session_products=[p for p in catalog.session_products.values() if p.packs],
        sessions_left={q.product: q.sessions_left for q in quotas},
        invoices=documents, can_buy=signed.user.role == Role.ADMIN,
        has_provider=runtime.payments.has_stripe, no_provider=NO_PROVIDER,
        form_key=lambda: new_id("dpay"),
    )  # fmt: skip


@router.get("/portal/billing")
async def billing_page(request: Request) -> Response:
    """Wallet, plans, packs to buy, invoices."""
    found = await member(request)
    if isinstance(found, Response):
        return found
    return await _billing_page(request, *found)


@dataclass(frozen=True, slots=True)
class _Buyer:
    signed: SignedIn
    customer_id: str
    form: Mapping[str, str]


async def _buyer(request: Request) -> _Buyer | Response:
    """The admin posting a buying form with the session's CSRF token, or the answer to anyone
    else: the login page, 403 for a bad token or a `member`."""
    found = await member(request)
    if isinstance(found, Response):
        return found
    signed, customer_id = found
    form = await form_of(request, signed)
    if form is None:
        return forbidden(request, signed)
    if signed.user.role != Role.ADMIN:
        return page(request, "message.html", signed, status=403, title="Not allowed",
                    message="Only an admin of your account can buy or change the plan.")  # fmt: skip
    return _Buyer(signed, customer_id, form)


async def _checkout(request: Request, buyer: _Buyer, item: payments.Item) -> Response:
    """303 to a Stripe Checkout page for `item`, which sends the customer back to the billing
    page (at `TOLLHOUSE_PUBLIC_URL`, else the address the request came to); the billing page
    saying so (503) when no payment provider is configured.

    Raises:
        InvalidInput: the form's `idempotency_key` is not 1..128 characters.
        CreditPackNotFound, SessionProductNotFound, PlanNotFound: not an item of the catalog.
        PaymentProviderError: Stripe refused or could not be reached.
    """
    runtime = runtime_of(request)
    if not runtime.payments.has_stripe:
        return await _billing_page(request, buyer.signed, buyer.customer_id, status=503,
                                   error=NO_PROVIDER)  # fmt: skip
    back = (runtime.settings.public_url or str(request.base_url)).rstrip("/") + BILLING
    key = check_key(buyer.form.get("idempotency_key", ""))
    view = await runtime.payments.checkout(
        buyer.customer_id, item, success_url=f"{back}?done=paid",
        cancel_url=f"{back}?done=canceled", idempotency_key=key,
    )  # fmt: skip
    if view.url is None:  # a checkout whose creation a crash interrupted: the replay ends it
        return await _billing_page(request, buyer.signed, buyer.customer_id, status=503,
                                   error="The payment page is not ready: try again.")  # fmt: skip
    return RedirectResponse(view.url, status_code=303)


def _count(value: str, field: str) -> int:
    """A positive whole number posted in `field`. Raises: InvalidInput."""
    if not value.isdigit() or int(value) < 1:
        msg = "a whole number of at least 1"
        raise InvalidInput(f"{field}: {msg}", errors=[{"loc": field, "msg": msg}])
    return int(value)


@router.post("/portal/billing/credit-pack")
async def buy_credit_pack(request: Request) -> Response:
    """Buy the posted `pack` (a catalog credit pack) at Stripe Checkout."""
    buyer = await _buyer(request)
    if isinstance(buyer, Response):
        return buyer
    try:
        return await _checkout(
            request, buyer, payments.Item("credit_pack", buyer.form.get("pack", ""))
        )
    except TollhouseError as error:
        return await _billing_page(request, buyer.signed, buyer.customer_id,
                                   status=error.status, error=error.detail)  # fmt: skip


@router.post("/portal/billing/session-pack")
async def buy_session_pack(request: Request) -> Response:
    """Buy the posted `product`'s pack of `sessions`: from the wallet (`pay=wallet`), or by
    card at Stripe Checkout (`pay=card`)."""
    buyer = await _buyer(request)
    if isinstance(buyer, Response):
        return buyer
    runtime = runtime_of(request)
    product, pay = buyer.form.get("product", ""), buyer.form.get("pay", "")
    try:
        count = _count(buyer.form.get("sessions", ""), "sessions")
        if pay == "card":
            return await _checkout(request, buyer, payments.Item("session_pack", product, count))
        if pay != "wallet":
            msg = "pay with 'wallet' or 'card'"
            raise InvalidInput(msg, errors=[{"loc": "pay", "msg": msg}])
        await sessions.buy_pack(
            runtime.db, runtime.ledger, catalog=runtime.catalog, clock=runtime.clock,
            customer_id=buyer.customer_id, product=product, sessions=count,
            idempotency_key=buyer.form.get("idempotency_key", ""),
        )  # fmt: skip
    except TollhouseError as error:
        return await _billing_page(request, buyer.signed, buyer.customer_id,
                                   status=error.status, error=error.detail)  # fmt: skip
    return RedirectResponse(f"{BILLING}?done=pack", status_code=303)


@router.post("/portal/billing/plan")
async def change_plan(request: Request) -> Response:
    """Move to the posted `plan`: a paid plan without a payment method on file goes to Stripe
    Checkout (which subscribes the customer once paid), or is refused (402) without Stripe;
    any other change happens now, as the API's (an upgrade prorated now, a downgrade at the
    period end)."""
    buyer = await _buyer(request)
    if isinstance(buyer, Response):
        return buyer
    runtime = runtime_of(request)
    customer_id, name = buyer.customer_id, buyer.form.get("plan", "")
    try:
        plan = runtime.catalog.plan(name)
        async with runtime.db.transaction() as session:
            subscription = await subscriptions.get_subscription(session, customer_id)
        if (
            plan.price_micros > 0
            and not subscription.has_payment_method
            and runtime.payments.has_stripe
        ):
            return await _checkout(request, buyer, payments.Item("plan", name))
        await runtime.change_plan(customer_id, name, require_payment_method=True)
    except PaymentMethodRequired:
        return await _billing_page(request, buyer.signed, customer_id, status=402,
                                   error=NO_PROVIDER)  # fmt: skip
    except TollhouseError as error:
        return await _billing_page(request, buyer.signed, customer_id, status=error.status,
                                   error=error.detail)  # fmt: skip
    return RedirectResponse(f"{BILLING}?done=plan", status_code=303)


async def _document(request: Request, invoice_id: str) -> InvoiceView | Response:
    """The member's customer's invoice or credit note, or the answer instead: the login
    page, 404 for an id that is not its customer's."""
    found = await member(request)
    if isinstance(found, Response):
        return found
    signed, customer_id = found
    runtime = runtime_of(request)
    try:
        async with runtime.db.transaction() as session:  # closed before rendering
            return await billing.get_invoice(session, invoice_id, customer_id=customer_id)
    except TollhouseError as failure:
        return page(request, "message.html", signed, status=failure.status,
                    title=failure.title, message=failure.detail)  # fmt: skip


@router.get("/portal/billing/invoices/{invoice_id}.html")
async def invoice_html(request: Request, invoice_id: str) -> Response:
    """The invoice as its own document (its inline styles, no script: `PAGE_POLICY`)."""
    document = await _document(request, invoice_id)
    if isinstance(document, Response):
        return document
    html = render_html(document, issuer=runtime_of(request).billing_terms.issuer)
    return HTMLResponse(html, headers={"content-security-policy": PAGE_POLICY,
                        "x-content-type-options": "nosniff", "cache-control": "no-store"})  # fmt: skip


@router.get("/portal/billing/invoices/{invoice_id}.pdf")
async def invoice_pdf(request: Request, invoice_id: str) -> Response:
    """The invoice as a PDF download, `<number>.pdf`."""
    document = await _document(request, invoice_id)
    if isinstance(document, Response):
        return document
    pdf = await render_pdf(document, issuer=runtime_of(request).billing_terms.issuer)
    name = document.number or document.id
    return Response(pdf, media_type="application/pdf", headers={
        "content-disposition": f'attachment; filename="{name}.pdf"', "cache-control": "no-store"})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Filters:
    """The transactions shown: of one `kind` (an `EntryKind` value, "" = every kind), made
    on the days `start` to `end` included (in the user's time zone; None = open)."""

    kind: str = ""
    start: date | None = None
    end: date | None = None

    @staticmethod
    def parse(kind: str, start: str, end: str) -> Filters:
        """Filters from the query's strings (dates as `YYYY-MM-DD`). Raises: InvalidInput."""
        if kind and kind not in {k.value for k in EntryKind}:
            raise InvalidInput(
                f"kind: no such kind {kind!r}", errors=[{"loc": "kind", "msg": "unknown"}]
            )
        days: list[date | None] = []
        for field, value in (("start", start), ("end", end)):
            try:
                days.append(date.fromisoformat(value) if value else None)
            except ValueError:
                msg = "a date as YYYY-MM-DD"
                raise InvalidInput(f"{field}: {msg}", errors=[{"loc": field, "msg": msg}]) from None
        return Filters(kind, days[0], days[1])

    def query(self, **more: object) -> str:
        """These filters (and `more`) as a URL query string."""
        values = {"kind": self.kind, "start": self.start, "end": self.end, **more}
        return urlencode({k: str(v) for k, v in values.items() if v})

    def window(self, zone: ZoneInfo) -> tuple[datetime | None, datetime | None]:
        """`(since, until)` in UTC: midnight of `start`, midnight after `end`, in `zone`."""
        since = None if self.start is None else datetime.combine(self.start, time(), zone)
        until = (
            None
            if self.end is None
            else datetime.combine(self.end + timedelta(days=1), time(), zone)
        )
        return (None if since is None else since.astimezone(UTC),
                None if until is None else until.astimezone(UTC))  # fmt: skip


async def _entries(
    request: Request, customer_id: str, filters: Filters, zone: ZoneInfo, *, limit: int,
    before_id: int | None,
) -> list[TransactionView]:  # fmt: skip
    since, until = filters.window(zone)
    runtime = runtime_of(request)
    async with runtime.db.transaction() as session:
        return await ledger.transactions(
            session, customer_id, limit=limit, before_id=before_id,
            kinds=[filters.kind] if filters.kind else None, since=since, until=until,
        )  # fmt: skip


def purpose(entry: TransactionView) -> str:
    """What the entry's hold paid for: the model of a call, else the hold's `purpose`
    (`session_fee`, `session_pack`...), else ""."""
    metadata = entry.hold_metadata or {}
    return str(metadata.get("model") or metadata.get("purpose") or "")


@router.get("/portal/billing/transactions")
async def transactions_page(
    request: Request, kind: str = "", start: str = "", end: str = "", before_id: int | None = None
) -> Response:
    """The customer's ledger entries, newest first, `TRANSACTIONS_PAGE` a page."""
    found = await member(request)
    if isinstance(found, Response):
        return found
    signed, customer_id = found
    shown: dict[str, Any] = {"kinds": [k.value for k in EntryKind], "kind": kind, "start": start, "end": end,
                             "purpose": purpose, "entries": [], "older": "", "csv": ""}  # fmt: skip
    try:
        filters = Filters.parse(kind, start, end)
    except InvalidInput as error:
        return page(request, "transactions.html", signed, status=422, error=error.detail, **shown)
    rows = await _entries(request, customer_id, filters, ZoneInfo(signed.user.time_zone),
                          limit=TRANSACTIONS_PAGE + 1, before_id=before_id)  # fmt: skip
    entries = rows[:TRANSACTIONS_PAGE]
    older = filters.query(before_id=entries[-1].id) if len(rows) > TRANSACTIONS_PAGE else ""
    shown.update(entries=entries, older=older, csv=filters.query())
    return page(request, "transactions.html", signed, error="", **shown)


def csv_row(entry: TransactionView) -> list[str]:
    """One entry as `CSV_COLUMNS`: money as an exact decimal, the time ISO 8601 in UTC, and
    text that a spreadsheet would read as a formula quoted with a leading `'`."""
    return [
        str(entry.id), entry.created_at.astimezone(UTC).isoformat(), entry.kind,
        entry.account_kind, decimal_string(entry.amount), entry.currency,
        _inert(entry.description), _inert(purpose(entry)), entry.hold_id or "", entry.transfer_id,
    ]  # fmt: skip


def _inert(text: str) -> str:
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


@router.get("/portal/billing/transactions.csv")
async def transactions_csv(
    request: Request, kind: str = "", start: str = "", end: str = ""
) -> Response:
    """Every entry the filters select, newest first, as CSV (`CSV_COLUMNS`), read a page of
    `ledger.MAX_PAGE` at a time."""
    found = await member(request)
    if isinstance(found, Response):
        return found
    signed, customer_id = found
    try:
        filters = Filters.parse(kind, start, end)
    except InvalidInput as error:
        return page(request, "message.html", signed, status=422, title="Invalid filter",
                    message=error.detail)  # fmt: skip
    zone = ZoneInfo(signed.user.time_zone)

    async def lines() -> AsyncIterator[str]:
        yield _csv_line(CSV_COLUMNS)
        before_id: int | None = None
        while True:
            rows = await _entries(request, customer_id, filters, zone, limit=ledger.MAX_PAGE,
                                  before_id=before_id)  # fmt: skip
            for entry in rows:
                yield _csv_line(csv_row(entry))
            if len(rows) < ledger.MAX_PAGE:
                return
            before_id = rows[-1].id

    return StreamingResponse(lines(), media_type="text/csv; charset=utf-8", headers={
        "content-disposition": 'attachment; filename="transactions.csv"',
        "cache-control": "no-store"})  # fmt: skip


def _csv_line(values: tuple[str, ...] | list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(values)
    return out.getvalue()
