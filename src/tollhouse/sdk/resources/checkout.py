"""`client.checkout`: CheckoutResource and AsyncCheckoutResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, new_idempotency_key, path
from tollhouse.sdk.models.checkout import Checkout, SessionPackItem


class CheckoutResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def create(
        self,
        *,
        credit_pack: str | None = None,
        session_pack: SessionPackItem | None = None,
        plan: str | None = None,
        success_url: str | None = None,
        cancel_url: str | None = None,
        customer_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Checkout:
        """Open a Stripe Checkout page for a credit pack, a session pack or a plan: 201 with its
        `url`. Once paid, Stripe's webhook posts the credits (and bonus), buys the session pack
        or subscribes the customer; a card saved with it is a payment method on file.

        `POST /v1/checkout`

        `credit_pack`: A credit pack of the catalog.

        `session_pack`: Or a session product's pack.

        `plan`: Or a paid plan: a Stripe subscription (a one-off plan is paid once).

        `success_url`: Where Stripe sends the customer after paying (default
        `TOLLHOUSE_CHECKOUT_SUCCESS_URL`).

        `cancel_url`: Where Stripe sends the customer who goes back (default
        `TOLLHOUSE_CHECKOUT_CANCEL_URL`).

        `customer_id`: Operator keys name the customer.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return self._requester._request(
            Call[Checkout](
                "POST",
                "/v1/checkout",
                Checkout,
                json=members(
                    {"idempotency_key": idempotency_key or new_idempotency_key()},
                    credit_pack=credit_pack,
                    session_pack=session_pack,
                    plan=plan,
                    success_url=success_url,
                    cancel_url=cancel_url,
                    customer_id=customer_id,
                ),
                retryable=True,
            )
        )

    def retrieve(self, checkout_id: str) -> Checkout:
        """One checkout: its status (`completed` once paid) and URL.

        `GET /v1/checkout/{checkout_id}`
        """
        return self._requester._request(
            Call[Checkout](
                "GET",
                path("/v1/checkout/{checkout_id}", checkout_id=checkout_id),
                Checkout,
                retryable=True,
            )
        )


class AsyncCheckoutResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def create(
        self,
        *,
        credit_pack: str | None = None,
        session_pack: SessionPackItem | None = None,
        plan: str | None = None,
        success_url: str | None = None,
        cancel_url: str | None = None,
        customer_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Checkout:
        """Open a Stripe Checkout page for a credit pack, a session pack or a plan: 201 with its
        `url`. Once paid, Stripe's webhook posts the credits (and bonus), buys the session pack
        or subscribes the customer; a card saved with it is a payment method on file.

        `POST /v1/checkout`

        `credit_pack`: A credit pack of the catalog.

        `session_pack`: Or a session product's pack.

        `plan`: Or a paid plan: a Stripe subscription (a one-off plan is paid once).

        `success_url`: Where Stripe sends the customer after paying (default
        `TOLLHOUSE_CHECKOUT_SUCCESS_URL`).

        `cancel_url`: Where Stripe sends the customer who goes back (default
        `TOLLHOUSE_CHECKOUT_CANCEL_URL`).

        `customer_id`: Operator keys name the customer.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return await self._requester._request(
            Call[Checkout](
                "POST",
                "/v1/checkout",
                Checkout,
                json=members(
                    {"idempotency_key": idempotency_key or new_idempotency_key()},
                    credit_pack=credit_pack,
                    session_pack=session_pack,
                    plan=plan,
                    success_url=success_url,
                    cancel_url=cancel_url,
                    customer_id=customer_id,
                ),
                retryable=True,
            )
        )

    async def retrieve(self, checkout_id: str) -> Checkout:
        """One checkout: its status (`completed` once paid) and URL.

        `GET /v1/checkout/{checkout_id}`
        """
        return await self._requester._request(
            Call[Checkout](
                "GET",
                path("/v1/checkout/{checkout_id}", checkout_id=checkout_id),
                Checkout,
                retryable=True,
            )
        )
