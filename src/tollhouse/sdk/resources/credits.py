"""`client.credits`: CreditsResource and AsyncCreditsResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, new_idempotency_key, path
from tollhouse.sdk.models.credits import Balance, Grant, Transaction
from tollhouse.sdk.pagination import AsyncPage, Cursor, SyncPage


class CreditsResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def grant(
        self,
        customer_id: str,
        *,
        amount_micros: int,
        expires_at: datetime | None = None,
        priority: int | None = None,
        source: Literal["promotional", "included", "purchased", "manual"] | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Grant:
        """Add credits to a customer's wallet (operator keys only): 201 with the new grant.

        Idempotent by key, as Stripe's API is: the same key with the same arguments answers 200
        with the first grant (nothing added); with other arguments, 422 `idempotency-key-reused`
        naming the `fields` that differ.

        `POST /v1/customers/{customer_id}/credits/grants`

        `amount_micros`: Credits to add, in micros of the catalog currency (1 USD = 1,000,000).

        `priority`: Among grants expiring together, lower priority is spent first.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return self._requester._request(
            Call[Grant](
                "POST",
                path("/v1/customers/{customer_id}/credits/grants", customer_id=customer_id),
                Grant,
                json=members(
                    {
                        "idempotency_key": idempotency_key or new_idempotency_key(),
                        "amount_micros": amount_micros,
                    },
                    expires_at=expires_at,
                    priority=priority,
                    source=source,
                    description=description,
                ),
                retryable=True,
            )
        )

    def balance(self, customer_id: str) -> Balance:
        """The wallet: available, held, overdraft limit, and each live grant.

        `GET /v1/customers/{customer_id}/balance`
        """
        return self._requester._request(
            Call[Balance](
                "GET",
                path("/v1/customers/{customer_id}/balance", customer_id=customer_id),
                Balance,
                retryable=True,
            )
        )

    def transactions(
        self, customer_id: str, *, limit: int = 50, before_id: int | None = None
    ) -> SyncPage[Transaction]:
        """Ledger entries on the customer's side, newest first.

        `GET /v1/customers/{customer_id}/transactions`

        `before_id`: page: entries older than this id
        """
        return SyncPage(
            self._requester,
            Call[list[Transaction]](
                "GET",
                path("/v1/customers/{customer_id}/transactions", customer_id=customer_id),
                list[Transaction],
                params=members({"limit": limit}, before_id=before_id),
                retryable=True,
            ),
            Cursor(param="before_id", envelope=False),
        )

    def set_overdraft(self, customer_id: str, *, limit_micros: int) -> Balance:
        """Let the wallet go down to `-limit_micros` (operator keys only; 0 = no overdraft).

        `PUT /v1/customers/{customer_id}/overdraft`
        """
        return self._requester._request(
            Call[Balance](
                "PUT",
                path("/v1/customers/{customer_id}/overdraft", customer_id=customer_id),
                Balance,
                json=members({"limit_micros": limit_micros}),
                retryable=True,
            )
        )

    def revoke_grant(self, grant_id: str) -> Grant:
        """Take back what is left of a grant (operator keys only); held credits stay held.

        `DELETE /v1/grants/{grant_id}`
        """
        return self._requester._request(
            Call[Grant](
                "DELETE", path("/v1/grants/{grant_id}", grant_id=grant_id), Grant, retryable=True
            )
        )


class AsyncCreditsResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def grant(
        self,
        customer_id: str,
        *,
        amount_micros: int,
        expires_at: datetime | None = None,
        priority: int | None = None,
        source: Literal["promotional", "included", "purchased", "manual"] | None = None,
        description: str | None = None,
        idempotency_key: str | None = None,
    ) -> Grant:
        """Add credits to a customer's wallet (operator keys only): 201 with the new grant.

        Idempotent by key, as Stripe's API is: the same key with the same arguments answers 200
        with the first grant (nothing added); with other arguments, 422 `idempotency-key-reused`
        naming the `fields` that differ.

        `POST /v1/customers/{customer_id}/credits/grants`

        `amount_micros`: Credits to add, in micros of the catalog currency (1 USD = 1,000,000).

        `priority`: Among grants expiring together, lower priority is spent first.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return await self._requester._request(
            Call[Grant](
                "POST",
                path("/v1/customers/{customer_id}/credits/grants", customer_id=customer_id),
                Grant,
                json=members(
                    {
                        "idempotency_key": idempotency_key or new_idempotency_key(),
                        "amount_micros": amount_micros,
                    },
                    expires_at=expires_at,
                    priority=priority,
                    source=source,
                    description=description,
                ),
                retryable=True,
            )
        )

    async def balance(self, customer_id: str) -> Balance:
        """The wallet: available, held, overdraft limit, and each live grant.

        `GET /v1/customers/{customer_id}/balance`
        """
        return await self._requester._request(
            Call[Balance](
                "GET",
                path("/v1/customers/{customer_id}/balance", customer_id=customer_id),
                Balance,
                retryable=True,
            )
        )

    def transactions(
        self, customer_id: str, *, limit: int = 50, before_id: int | None = None
    ) -> AsyncPage[Transaction]:
        """Ledger entries on the customer's side, newest first.

        `GET /v1/customers/{customer_id}/transactions`

        `before_id`: page: entries older than this id
        """
        return AsyncPage(
            self._requester,
            Call[list[Transaction]](
                "GET",
                path("/v1/customers/{customer_id}/transactions", customer_id=customer_id),
                list[Transaction],
                params=members({"limit": limit}, before_id=before_id),
                retryable=True,
            ),
            Cursor(param="before_id", envelope=False),
        )

    async def set_overdraft(self, customer_id: str, *, limit_micros: int) -> Balance:
        """Let the wallet go down to `-limit_micros` (operator keys only; 0 = no overdraft).

        `PUT /v1/customers/{customer_id}/overdraft`
        """
        return await self._requester._request(
            Call[Balance](
                "PUT",
                path("/v1/customers/{customer_id}/overdraft", customer_id=customer_id),
                Balance,
                json=members({"limit_micros": limit_micros}),
                retryable=True,
            )
        )

    async def revoke_grant(self, grant_id: str) -> Grant:
        """Take back what is left of a grant (operator keys only); held credits stay held.

        `DELETE /v1/grants/{grant_id}`
        """
        return await self._requester._request(
            Call[Grant](
                "DELETE", path("/v1/grants/{grant_id}", grant_id=grant_id), Grant, retryable=True
            )
        )
