"""`client.invoices`: InvoicesResource and AsyncInvoicesResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

import builtins
from typing import Literal

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, path
from tollhouse.sdk.models.invoices import Invoice, PeriodClose
from tollhouse.sdk.pagination import AsyncPage, Cursor, SyncPage


class InvoicesResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def list(
        self,
        *,
        customer_id: str | None = None,
        kind: Literal["invoice", "credit_note"] | None = None,
        status: Literal["draft", "open", "paid", "void", "uncollectible"] | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> SyncPage[Invoice]:
        """Invoices and credit notes with their lines, newest first: the customer's own, or for an
        operator everyone's (or `customer_id`'s).

        `GET /v1/invoices`

        `before`: page: invoices older than this id
        """
        return SyncPage(
            self._requester,
            Call[builtins.list[Invoice]](
                "GET",
                "/v1/invoices",
                builtins.list[Invoice],
                params=members(
                    {"limit": limit},
                    customer_id=customer_id,
                    kind=kind,
                    status=status,
                    before=before,
                ),
                retryable=True,
            ),
            Cursor(param="before", envelope=False),
        )

    def close_periods(self) -> PeriodClose:
        """Run the period close now (operators; the server runs it every 30 s): roll the
        subscriptions whose period ended, invoice every boundary crossed, number the drafts.

        `POST /v1/billing/close`
        """
        return self._requester._request(
            Call[PeriodClose]("POST", "/v1/billing/close", PeriodClose, retryable=True)
        )

    def html(self, invoice_id: str) -> str:
        """The invoice (or credit note) as an HTML page, from the same template as its PDF.

        `GET /v1/invoices/{invoice_id}.html`
        """
        return self._requester._request(
            Call[str](
                "GET",
                path("/v1/invoices/{invoice_id}.html", invoice_id=invoice_id),
                str,
                retryable=True,
            )
        )

    def pdf(self, invoice_id: str) -> bytes:
        """The invoice (or credit note) as a PDF laid out from its HTML page (WeasyPrint).

        `GET /v1/invoices/{invoice_id}.pdf`
        """
        return self._requester._request(
            Call[bytes](
                "GET",
                path("/v1/invoices/{invoice_id}.pdf", invoice_id=invoice_id),
                bytes,
                retryable=True,
            )
        )

    def retrieve(self, invoice_id: str) -> Invoice:
        """One invoice or credit note with its lines (`.html` and `.pdf` render it).

        `GET /v1/invoices/{invoice_id}`
        """
        return self._requester._request(
            Call[Invoice](
                "GET",
                path("/v1/invoices/{invoice_id}", invoice_id=invoice_id),
                Invoice,
                retryable=True,
            )
        )

    def pay(self, invoice_id: str, *, payment_reference: str | None = None) -> Invoice:
        """Record a payment of an open (or uncollectible) invoice (operators): `paid`, with
        `invoice.paid`; a paid one is answered as it is; 409 `invalid-invoice-transition` for a
        draft, a void invoice or a credit note.

        `POST /v1/invoices/{invoice_id}/pay`

        `payment_reference`: What paid it: a payment's id, a bank transfer's reference.
        """
        return self._requester._request(
            Call[Invoice](
                "POST",
                path("/v1/invoices/{invoice_id}/pay", invoice_id=invoice_id),
                Invoice,
                json=members({}, payment_reference=payment_reference),
            )
        )

    def void(self, invoice_id: str) -> Invoice:
        """Void an open or uncollectible invoice (operators); it keeps its number.

        `POST /v1/invoices/{invoice_id}/void`
        """
        return self._requester._request(
            Call[Invoice](
                "POST", path("/v1/invoices/{invoice_id}/void", invoice_id=invoice_id), Invoice
            )
        )

    def mark_uncollectible(self, invoice_id: str) -> Invoice:
        """Mark an open invoice as not expected to be paid (operators).

        `POST /v1/invoices/{invoice_id}/mark-uncollectible`
        """
        return self._requester._request(
            Call[Invoice](
                "POST",
                path("/v1/invoices/{invoice_id}/mark-uncollectible", invoice_id=invoice_id),
                Invoice,
            )
        )


class AsyncInvoicesResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    def list(
        self,
        *,
        customer_id: str | None = None,
        kind: Literal["invoice", "credit_note"] | None = None,
        status: Literal["draft", "open", "paid", "void", "uncollectible"] | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> AsyncPage[Invoice]:
        """Invoices and credit notes with their lines, newest first: the customer's own, or for an
        operator everyone's (or `customer_id`'s).

        `GET /v1/invoices`

        `before`: page: invoices older than this id
        """
        return AsyncPage(
            self._requester,
            Call[builtins.list[Invoice]](
                "GET",
                "/v1/invoices",
                builtins.list[Invoice],
                params=members(
                    {"limit": limit},
                    customer_id=customer_id,
                    kind=kind,
                    status=status,
                    before=before,
                ),
                retryable=True,
            ),
            Cursor(param="before", envelope=False),
        )

    async def close_periods(self) -> PeriodClose:
        """Run the period close now (operators; the server runs it every 30 s): roll the
        subscriptions whose period ended, invoice every boundary crossed, number the drafts.

        `POST /v1/billing/close`
        """
        return await self._requester._request(
            Call[PeriodClose]("POST", "/v1/billing/close", PeriodClose, retryable=True)
        )

    async def html(self, invoice_id: str) -> str:
        """The invoice (or credit note) as an HTML page, from the same template as its PDF.

        `GET /v1/invoices/{invoice_id}.html`
        """
        return await self._requester._request(
            Call[str](
                "GET",
                path("/v1/invoices/{invoice_id}.html", invoice_id=invoice_id),
                str,
                retryable=True,
            )
        )

    async def pdf(self, invoice_id: str) -> bytes:
        """The invoice (or credit note) as a PDF laid out from its HTML page (WeasyPrint).

        `GET /v1/invoices/{invoice_id}.pdf`
        """
        return await self._requester._request(
            Call[bytes](
                "GET",
                path("/v1/invoices/{invoice_id}.pdf", invoice_id=invoice_id),
                bytes,
                retryable=True,
            )
        )

    async def retrieve(self, invoice_id: str) -> Invoice:
        """One invoice or credit note with its lines (`.html` and `.pdf` render it).

        `GET /v1/invoices/{invoice_id}`
        """
        return await self._requester._request(
            Call[Invoice](
                "GET",
                path("/v1/invoices/{invoice_id}", invoice_id=invoice_id),
                Invoice,
                retryable=True,
            )
        )

    async def pay(self, invoice_id: str, *, payment_reference: str | None = None) -> Invoice:
        """Record a payment of an open (or uncollectible) invoice (operators): `paid`, with
        `invoice.paid`; a paid one is answered as it is; 409 `invalid-invoice-transition` for a
        draft, a void invoice or a credit note.

        `POST /v1/invoices/{invoice_id}/pay`

        `payment_reference`: What paid it: a payment's id, a bank transfer's reference.
        """
        return await self._requester._request(
            Call[Invoice](
                "POST",
                path("/v1/invoices/{invoice_id}/pay", invoice_id=invoice_id),
                Invoice,
                json=members({}, payment_reference=payment_reference),
            )
        )

    async def void(self, invoice_id: str) -> Invoice:
        """Void an open or uncollectible invoice (operators); it keeps its number.

        `POST /v1/invoices/{invoice_id}/void`
        """
        return await self._requester._request(
            Call[Invoice](
                "POST", path("/v1/invoices/{invoice_id}/void", invoice_id=invoice_id), Invoice
            )
        )

    async def mark_uncollectible(self, invoice_id: str) -> Invoice:
        """Mark an open invoice as not expected to be paid (operators).

        `POST /v1/invoices/{invoice_id}/mark-uncollectible`
        """
        return await self._requester._request(
            Call[Invoice](
                "POST",
                path("/v1/invoices/{invoice_id}/mark-uncollectible", invoice_id=invoice_id),
                Invoice,
            )
        )
