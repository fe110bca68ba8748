"""`client.credit_alerts`: CreditAlertsResource and AsyncCreditAlertsResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, path
from tollhouse.sdk.models.credit_alerts import CreditAlert


class CreditAlertsResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def retrieve(self, customer_id: str) -> CreditAlert:
        """The customer's low-credit alert (404 `not-found` when it has none).

        `GET /v1/customers/{customer_id}/credit-alerts`
        """
        return self._requester._request(
            Call[CreditAlert](
                "GET",
                path("/v1/customers/{customer_id}/credit-alerts", customer_id=customer_id),
                CreditAlert,
                retryable=True,
            )
        )

    def set(
        self,
        customer_id: str,
        *,
        threshold_micros: int | None = None,
        threshold_percent: int | None = None,
    ) -> CreditAlert:
        """Set the customer's low-credit threshold: an amount or a percent of its latest grant
        (exactly one: 422 otherwise). It starts from the balance now, without an event; every
        process applies it within 2 s.

        `PUT /v1/customers/{customer_id}/credit-alerts`

        `threshold_micros`: Warn below this available balance, in micros.

        `threshold_percent`: Or: warn below this share of the customer's latest grant (exactly
        one of the two).
        """
        return self._requester._request(
            Call[CreditAlert](
                "PUT",
                path("/v1/customers/{customer_id}/credit-alerts", customer_id=customer_id),
                CreditAlert,
                json=members(
                    {}, threshold_micros=threshold_micros, threshold_percent=threshold_percent
                ),
                retryable=True,
            )
        )

    def delete(self, customer_id: str) -> None:
        """Remove the customer's low-credit alert (204 whether or not it had one).

        `DELETE /v1/customers/{customer_id}/credit-alerts`
        """
        return self._requester._request(
            Call[None](
                "DELETE",
                path("/v1/customers/{customer_id}/credit-alerts", customer_id=customer_id),
                None,
                retryable=True,
            )
        )


class AsyncCreditAlertsResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def retrieve(self, customer_id: str) -> CreditAlert:
        """The customer's low-credit alert (404 `not-found` when it has none).

        `GET /v1/customers/{customer_id}/credit-alerts`
        """
        return await self._requester._request(
            Call[CreditAlert](
                "GET",
                path("/v1/customers/{customer_id}/credit-alerts", customer_id=customer_id),
                CreditAlert,
                retryable=True,
            )
        )

    async def set(
        self,
        customer_id: str,
        *,
        threshold_micros: int | None = None,
        threshold_percent: int | None = None,
    ) -> CreditAlert:
        """Set the customer's low-credit threshold: an amount or a percent of its latest grant
        (exactly one: 422 otherwise). It starts from the balance now, without an event; every
        process applies it within 2 s.

        `PUT /v1/customers/{customer_id}/credit-alerts`

        `threshold_micros`: Warn below this available balance, in micros.

        `threshold_percent`: Or: warn below this share of the customer's latest grant (exactly
        one of the two).
        """
        return await self._requester._request(
            Call[CreditAlert](
                "PUT",
                path("/v1/customers/{customer_id}/credit-alerts", customer_id=customer_id),
                CreditAlert,
                json=members(
                    {}, threshold_micros=threshold_micros, threshold_percent=threshold_percent
                ),
                retryable=True,
            )
        )

    async def delete(self, customer_id: str) -> None:
        """Remove the customer's low-credit alert (204 whether or not it had one).

        `DELETE /v1/customers/{customer_id}/credit-alerts`
        """
        return await self._requester._request(
            Call[None](
                "DELETE",
                path("/v1/customers/{customer_id}/credit-alerts", customer_id=customer_id),
                None,
                retryable=True,
            )
        )
