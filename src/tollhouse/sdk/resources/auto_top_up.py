"""`client.auto_top_up`: AutoTopUpResource and AsyncAutoTopUpResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, path
from tollhouse.sdk.models.auto_top_up import AutoTopUp


class AutoTopUpResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def retrieve(self, customer_id: str) -> AutoTopUp:
        """The customer's auto top-up rule (disabled, threshold 0, when it never set one).

        `GET /v1/customers/{customer_id}/auto-top-up`
        """
        return self._requester._request(
            Call[AutoTopUp](
                "GET",
                path("/v1/customers/{customer_id}/auto-top-up", customer_id=customer_id),
                AutoTopUp,
                retryable=True,
            )
        )

    def set(
        self, customer_id: str, *, enabled: bool, threshold_micros: int, pack: str
    ) -> AutoTopUp:
        """Buy `pack` off-session whenever a debit takes the wallet below `threshold_micros`, once
        per crossing (customers: `admin` scope). Enabling needs a card saved with Stripe (402
        `payment-method-required`: complete a checkout first).

        `PUT /v1/customers/{customer_id}/auto-top-up`

        `threshold_micros`: Buy the pack when a debit takes the available balance below this.

        `pack`: The credit pack bought, charged off-session on the card saved with Stripe.
        """
        return self._requester._request(
            Call[AutoTopUp](
                "PUT",
                path("/v1/customers/{customer_id}/auto-top-up", customer_id=customer_id),
                AutoTopUp,
                json=members(
                    {"enabled": enabled, "threshold_micros": threshold_micros, "pack": pack}
                ),
                retryable=True,
            )
        )


class AsyncAutoTopUpResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def retrieve(self, customer_id: str) -> AutoTopUp:
        """The customer's auto top-up rule (disabled, threshold 0, when it never set one).

        `GET /v1/customers/{customer_id}/auto-top-up`
        """
        return await self._requester._request(
            Call[AutoTopUp](
                "GET",
                path("/v1/customers/{customer_id}/auto-top-up", customer_id=customer_id),
                AutoTopUp,
                retryable=True,
            )
        )

    async def set(
        self, customer_id: str, *, enabled: bool, threshold_micros: int, pack: str
    ) -> AutoTopUp:
        """Buy `pack` off-session whenever a debit takes the wallet below `threshold_micros`, once
        per crossing (customers: `admin` scope). Enabling needs a card saved with Stripe (402
        `payment-method-required`: complete a checkout first).

        `PUT /v1/customers/{customer_id}/auto-top-up`

        `threshold_micros`: Buy the pack when a debit takes the available balance below this.

        `pack`: The credit pack bought, charged off-session on the card saved with Stripe.
        """
        return await self._requester._request(
            Call[AutoTopUp](
                "PUT",
                path("/v1/customers/{customer_id}/auto-top-up", customer_id=customer_id),
                AutoTopUp,
                json=members(
                    {"enabled": enabled, "threshold_micros": threshold_micros, "pack": pack}
                ),
                retryable=True,
            )
        )
