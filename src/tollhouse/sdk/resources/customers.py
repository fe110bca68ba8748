"""`client.customers`: CustomersResource and AsyncCustomersResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

import builtins

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, path
from tollhouse.sdk.models.customers import Customer
from tollhouse.sdk.pagination import AsyncPage, Cursor, SyncPage


class CustomersResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def create(
        self,
        *,
        name: str,
        email: str | None = None,
        external_id: str | None = None,
        plan: str | None = None,
        timezone: str | None = None,
        country: str | None = None,
    ) -> Customer:
        """Create a customer (operator keys only), subscribed at once to `plan` (default: the
        catalog's default plan) in `timezone`; the plan's included credits are granted.

        `POST /v1/customers`

        `external_id`: Your own id for this customer (unique).

        `plan`: Catalog plan name; default: the catalog's default plan.

        `timezone`: IANA time zone of the customer: billing periods start at its local midnight.

        `country`: ISO 3166-1 alpha-2 code (`DE`): its invoices' tax rate
        (`TOLLHOUSE_TAX_RATES`).
        """
        return self._requester._request(
            Call[Customer](
                "POST",
                "/v1/customers",
                Customer,
                json=members(
                    {"name": name},
                    email=email,
                    external_id=external_id,
                    plan=plan,
                    timezone=timezone,
                    country=country,
                ),
            )
        )

    def list(self, *, limit: int = 100, after: str | None = None) -> SyncPage[Customer]:
        """Customers in id order, `limit` per page (operator keys only).

        `GET /v1/customers`

        `after`: id of the last customer of the previous page
        """
        return SyncPage(
            self._requester,
            Call[builtins.list[Customer]](
                "GET",
                "/v1/customers",
                builtins.list[Customer],
                params=members({"limit": limit}, after=after),
                retryable=True,
            ),
            Cursor(param="after", envelope=False),
        )

    def retrieve(self, customer_id: str) -> Customer:
        """One customer; `me` is the caller's own.

        `GET /v1/customers/{customer_id}`
        """
        return self._requester._request(
            Call[Customer](
                "GET",
                path("/v1/customers/{customer_id}", customer_id=customer_id),
                Customer,
                retryable=True,
            )
        )

    def update(self, customer_id: str, *, country: str | None) -> Customer:
        """Change a customer's country (operator keys only).

        `PATCH /v1/customers/{customer_id}`

        `country`: ISO 3166-1 alpha-2 code (`DE`), or null: the tax rate of invoices built from
        now on.
        """
        return self._requester._request(
            Call[Customer](
                "PATCH",
                path("/v1/customers/{customer_id}", customer_id=customer_id),
                Customer,
                json=members({"country": country}),
                retryable=True,
            )
        )


class AsyncCustomersResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def create(
        self,
        *,
        name: str,
        email: str | None = None,
        external_id: str | None = None,
        plan: str | None = None,
        timezone: str | None = None,
        country: str | None = None,
    ) -> Customer:
        """Create a customer (operator keys only), subscribed at once to `plan` (default: the
        catalog's default plan) in `timezone`; the plan's included credits are granted.

        `POST /v1/customers`

        `external_id`: Your own id for this customer (unique).

        `plan`: Catalog plan name; default: the catalog's default plan.

        `timezone`: IANA time zone of the customer: billing periods start at its local midnight.

        `country`: ISO 3166-1 alpha-2 code (`DE`): its invoices' tax rate
        (`TOLLHOUSE_TAX_RATES`).
        """
        return await self._requester._request(
            Call[Customer](
                "POST",
                "/v1/customers",
                Customer,
                json=members(
                    {"name": name},
                    email=email,
                    external_id=external_id,
                    plan=plan,
                    timezone=timezone,
                    country=country,
                ),
            )
        )

    def list(self, *, limit: int = 100, after: str | None = None) -> AsyncPage[Customer]:
        """Customers in id order, `limit` per page (operator keys only).

        `GET /v1/customers`

        `after`: id of the last customer of the previous page
        """
        return AsyncPage(
            self._requester,
            Call[builtins.list[Customer]](
                "GET",
                "/v1/customers",
                builtins.list[Customer],
                params=members({"limit": limit}, after=after),
                retryable=True,
            ),
            Cursor(param="after", envelope=False),
        )

    async def retrieve(self, customer_id: str) -> Customer:
        """One customer; `me` is the caller's own.

        `GET /v1/customers/{customer_id}`
        """
        return await self._requester._request(
            Call[Customer](
                "GET",
                path("/v1/customers/{customer_id}", customer_id=customer_id),
                Customer,
                retryable=True,
            )
        )

    async def update(self, customer_id: str, *, country: str | None) -> Customer:
        """Change a customer's country (operator keys only).

        `PATCH /v1/customers/{customer_id}`

        `country`: ISO 3166-1 alpha-2 code (`DE`), or null: the tax rate of invoices built from
        now on.
        """
        return await self._requester._request(
            Call[Customer](
                "PATCH",
                path("/v1/customers/{customer_id}", customer_id=customer_id),
                Customer,
                json=members({"country": country}),
                retryable=True,
            )
        )
