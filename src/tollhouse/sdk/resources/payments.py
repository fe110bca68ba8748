"""`client.payments`: PaymentsResource and AsyncPaymentsResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

import builtins
from typing import Literal

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, new_idempotency_key, path
from tollhouse.sdk.models.payments import Payment
from tollhouse.sdk.pagination import AsyncPage, Cursor, SyncPage


class PaymentsResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def list(
        self,
        *,
        customer_id: str | None = None,
        status: Literal["pending", "succeeded", "failed"] | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> SyncPage[Payment]:
        """Payments newest first: the customer's own, or for an operator everyone's (or one
        customer's).

        `GET /v1/payments`

        `customer_id`: Operators: one customer's (customers: omit)

        `before`: page: payments older than this id
        """
        return SyncPage(
            self._requester,
            Call[builtins.list[Payment]](
                "GET",
                "/v1/payments",
                builtins.list[Payment],
                params=members(
                    {"limit": limit}, customer_id=customer_id, status=status, before=before
                ),
                retryable=True,
            ),
            Cursor(param="before", envelope=False),
        )

    def create(
        self,
        *,
        customer_id: str,
        pack: str | None = None,
        amount_micros: int | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Payment:
        """Record a payment received outside Stripe (operators; provider `manual`): 201 once its
        credits (and the pack's bonus) are posted and `payment.succeeded` is written; the same
        key again answers 200 with the first payment; with other fields, 409.

        `POST /v1/payments`

        `pack`: A credit pack of the catalog: its credits and its bonus are posted.

        `amount_micros`: Or an amount paid: that many credits, no bonus.

        `description`: The operator's note: the bank transfer's reference, the invoice number.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return self._requester._request(
            Call[Payment](
                "POST",
                "/v1/payments",
                Payment,
                json=members(
                    {
                        "idempotency_key": idempotency_key or new_idempotency_key(),
                        "customer_id": customer_id,
                    },
                    pack=pack,
                    amount_micros=amount_micros,
                    description=description,
                ),
                retryable=True,
            )
        )

    def retrieve(self, payment_id: str) -> Payment:
        """One payment with its refunds.

        `GET /v1/payments/{payment_id}`
        """
        return self._requester._request(
            Call[Payment](
                "GET",
                path("/v1/payments/{payment_id}", payment_id=payment_id),
                Payment,
                retryable=True,
            )
        )

    def refund(
        self,
        payment_id: str,
        *,
        amount_micros: int | None = None,
        idempotency_key: str | None = None,
    ) -> Payment:
        """Refund a manual payment (operators): its refunded share of the credits and bonus is
        taken back as far as the wallet still holds them (`unrecovered_micros`: the rest). A
        Stripe payment is refunded in Stripe (409): its `charge.refunded` event does the same.
        Each refund step is documented by a credit note (`GET /v1/invoices?kind=credit_note`),
        written before this answers.

        `POST /v1/payments/{payment_id}/refund`

        `amount_micros`: Money refunded; default: all that is not refunded yet.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return self._requester._request(
            Call[Payment](
                "POST",
                path("/v1/payments/{payment_id}/refund", payment_id=payment_id),
                Payment,
                json=members(
                    {"idempotency_key": idempotency_key or new_idempotency_key()},
                    amount_micros=amount_micros,
                ),
                retryable=True,
            )
        )


class AsyncPaymentsResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    def list(
        self,
        *,
        customer_id: str | None = None,
        status: Literal["pending", "succeeded", "failed"] | None = None,
        limit: int = 50,
        before: str | None = None,
    ) -> AsyncPage[Payment]:
        """Payments newest first: the customer's own, or for an operator everyone's (or one
        customer's).

        `GET /v1/payments`

        `customer_id`: Operators: one customer's (customers: omit)

        `before`: page: payments older than this id
        """
        return AsyncPage(
            self._requester,
            Call[builtins.list[Payment]](
                "GET",
                "/v1/payments",
                builtins.list[Payment],
                params=members(
                    {"limit": limit}, customer_id=customer_id, status=status, before=before
                ),
                retryable=True,
            ),
            Cursor(param="before", envelope=False),
        )

    async def create(
        self,
        *,
        customer_id: str,
        pack: str | None = None,
        amount_micros: int | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Payment:
        """Record a payment received outside Stripe (operators; provider `manual`): 201 once its
        credits (and the pack's bonus) are posted and `payment.succeeded` is written; the same
        key again answers 200 with the first payment; with other fields, 409.

        `POST /v1/payments`

        `pack`: A credit pack of the catalog: its credits and its bonus are posted.

        `amount_micros`: Or an amount paid: that many credits, no bonus.

        `description`: The operator's note: the bank transfer's reference, the invoice number.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return await self._requester._request(
            Call[Payment](
                "POST",
                "/v1/payments",
                Payment,
                json=members(
                    {
                        "idempotency_key": idempotency_key or new_idempotency_key(),
                        "customer_id": customer_id,
                    },
                    pack=pack,
                    amount_micros=amount_micros,
                    description=description,
                ),
                retryable=True,
            )
        )

    async def retrieve(self, payment_id: str) -> Payment:
        """One payment with its refunds.

        `GET /v1/payments/{payment_id}`
        """
        return await self._requester._request(
            Call[Payment](
                "GET",
                path("/v1/payments/{payment_id}", payment_id=payment_id),
                Payment,
                retryable=True,
            )
        )

    async def refund(
        self,
        payment_id: str,
        *,
        amount_micros: int | None = None,
        idempotency_key: str | None = None,
    ) -> Payment:
        """Refund a manual payment (operators): its refunded share of the credits and bonus is
        taken back as far as the wallet still holds them (`unrecovered_micros`: the rest). A
        Stripe payment is refunded in Stripe (409): its `charge.refunded` event does the same.
        Each refund step is documented by a credit note (`GET /v1/invoices?kind=credit_note`),
        written before this answers.

        `POST /v1/payments/{payment_id}/refund`

        `amount_micros`: Money refunded; default: all that is not refunded yet.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return await self._requester._request(
            Call[Payment](
                "POST",
                path("/v1/payments/{payment_id}/refund", payment_id=payment_id),
                Payment,
                json=members(
                    {"idempotency_key": idempotency_key or new_idempotency_key()},
                    amount_micros=amount_micros,
                ),
                retryable=True,
            )
        )
