"""`client.subscriptions`: SubscriptionsResource and AsyncSubscriptionsResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, path
from tollhouse.sdk.models.subscriptions import (
    MeterQuota,
    PlanChange,
    Subscription,
    SubscriptionChange,
)
from tollhouse.sdk.pagination import AsyncPage, Cursor, SyncPage


class SubscriptionsResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def current(self, *, customer_id: str | None = None) -> Subscription:
        """The subscription of the key's customer (operators: `?customer_id=`).

        `GET /v1/subscription/me`
        """
        return self._requester._request(
            Call[Subscription](
                "GET",
                "/v1/subscription/me",
                Subscription,
                params=members({}, customer_id=customer_id),
                retryable=True,
            )
        )

    def usage(self, *, customer_id: str | None = None) -> list[MeterQuota]:
        """Each meter in the current period: used, limit, remaining, resets_at (exact, from
        events).

        `GET /v1/subscription/usage`
        """
        return self._requester._request(
            Call[list[MeterQuota]](
                "GET",
                "/v1/subscription/usage",
                list[MeterQuota],
                params=members({}, customer_id=customer_id),
                retryable=True,
            )
        )

    def history(
        self, *, customer_id: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> SyncPage[SubscriptionChange]:
        """Every change of the subscription, newest first.

        `GET /v1/subscription/history`
        """
        return SyncPage(
            self._requester,
            Call[list[SubscriptionChange]](
                "GET",
                "/v1/subscription/history",
                list[SubscriptionChange],
                params=members({"limit": limit}, customer_id=customer_id, before_id=before_id),
                retryable=True,
            ),
            Cursor(param="before_id", envelope=False),
        )

    def change(self, *, customer_id: str | None = None, plan: str) -> PlanChange:
        """Upgrade now (prorated, Stripe's model) or downgrade at the period end. A customer
        choosing a paid plan needs a payment method on file (402 `payment-method-required`: pay
        it through `POST /v1/checkout`); an operator's change is manual billing.

        `POST /v1/subscription/change`
        """
        return self._requester._request(
            Call[PlanChange](
                "POST",
                "/v1/subscription/change",
                PlanChange,
                params=members({}, customer_id=customer_id),
                json=members({"plan": plan}),
            )
        )

    def cancel(
        self, *, customer_id: str | None = None, at_period_end: bool | None = None
    ) -> Subscription:
        """Cancel at the period end (default) or now.

        `POST /v1/subscription/cancel`

        `at_period_end`: False cancels now (no refund); the customer falls back to the default
        plan.
        """
        return self._requester._request(
            Call[Subscription](
                "POST",
                "/v1/subscription/cancel",
                Subscription,
                params=members({}, customer_id=customer_id),
                json=members({}, at_period_end=at_period_end),
            )
        )

    def resume(self, *, customer_id: str | None = None) -> Subscription:
        """Undo a scheduled cancellation or downgrade.

        `POST /v1/subscription/resume`
        """
        return self._requester._request(
            Call[Subscription](
                "POST",
                "/v1/subscription/resume",
                Subscription,
                params=members({}, customer_id=customer_id),
            )
        )

    def retrieve(self, customer_id: str) -> Subscription:
        """A customer's subscription (the customer itself, or an operator).

        `GET /v1/customers/{customer_id}/subscription`
        """
        return self._requester._request(
            Call[Subscription](
                "GET",
                path("/v1/customers/{customer_id}/subscription", customer_id=customer_id),
                Subscription,
                retryable=True,
            )
        )

    def set_plan(self, customer_id: str, *, plan: str) -> PlanChange:
        """Operators: move any customer to any plan (same rules as a self-service change).

        `PUT /v1/customers/{customer_id}/subscription`
        """
        return self._requester._request(
            Call[PlanChange](
                "PUT",
                path("/v1/customers/{customer_id}/subscription", customer_id=customer_id),
                PlanChange,
                json=members({"plan": plan}),
                retryable=True,
            )
        )

    def set_payment_method(self, customer_id: str, *, has_payment_method: bool) -> Subscription:
        """Operators: record whether a payment method is on file (a past_due subscription given one
        becomes active).

        `PUT /v1/customers/{customer_id}/subscription/payment-method`
        """
        return self._requester._request(
            Call[Subscription](
                "PUT",
                path(
                    "/v1/customers/{customer_id}/subscription/payment-method",
                    customer_id=customer_id,
                ),
                Subscription,
                json=members({"has_payment_method": has_payment_method}),
                retryable=True,
            )
        )


class AsyncSubscriptionsResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def current(self, *, customer_id: str | None = None) -> Subscription:
        """The subscription of the key's customer (operators: `?customer_id=`).

        `GET /v1/subscription/me`
        """
        return await self._requester._request(
            Call[Subscription](
                "GET",
                "/v1/subscription/me",
                Subscription,
                params=members({}, customer_id=customer_id),
                retryable=True,
            )
        )

    async def usage(self, *, customer_id: str | None = None) -> list[MeterQuota]:
        """Each meter in the current period: used, limit, remaining, resets_at (exact, from
        events).

        `GET /v1/subscription/usage`
        """
        return await self._requester._request(
            Call[list[MeterQuota]](
                "GET",
                "/v1/subscription/usage",
                list[MeterQuota],
                params=members({}, customer_id=customer_id),
                retryable=True,
            )
        )

    def history(
        self, *, customer_id: str | None = None, limit: int = 100, before_id: int | None = None
    ) -> AsyncPage[SubscriptionChange]:
        """Every change of the subscription, newest first.

        `GET /v1/subscription/history`
        """
        return AsyncPage(
            self._requester,
            Call[list[SubscriptionChange]](
                "GET",
                "/v1/subscription/history",
                list[SubscriptionChange],
                params=members({"limit": limit}, customer_id=customer_id, before_id=before_id),
                retryable=True,
            ),
            Cursor(param="before_id", envelope=False),
        )

    async def change(self, *, customer_id: str | None = None, plan: str) -> PlanChange:
        """Upgrade now (prorated, Stripe's model) or downgrade at the period end. A customer
        choosing a paid plan needs a payment method on file (402 `payment-method-required`: pay
        it through `POST /v1/checkout`); an operator's change is manual billing.

        `POST /v1/subscription/change`
        """
        return await self._requester._request(
            Call[PlanChange](
                "POST",
                "/v1/subscription/change",
                PlanChange,
                params=members({}, customer_id=customer_id),
                json=members({"plan": plan}),
            )
        )

    async def cancel(
        self, *, customer_id: str | None = None, at_period_end: bool | None = None
    ) -> Subscription:
        """Cancel at the period end (default) or now.

        `POST /v1/subscription/cancel`

        `at_period_end`: False cancels now (no refund); the customer falls back to the default
        plan.
        """
        return await self._requester._request(
            Call[Subscription](
                "POST",
                "/v1/subscription/cancel",
                Subscription,
                params=members({}, customer_id=customer_id),
                json=members({}, at_period_end=at_period_end),
            )
        )

    async def resume(self, *, customer_id: str | None = None) -> Subscription:
        """Undo a scheduled cancellation or downgrade.

        `POST /v1/subscription/resume`
        """
        return await self._requester._request(
            Call[Subscription](
                "POST",
                "/v1/subscription/resume",
                Subscription,
                params=members({}, customer_id=customer_id),
            )
        )

    async def retrieve(self, customer_id: str) -> Subscription:
        """A customer's subscription (the customer itself, or an operator).

        `GET /v1/customers/{customer_id}/subscription`
        """
        return await self._requester._request(
            Call[Subscription](
                "GET",
                path("/v1/customers/{customer_id}/subscription", customer_id=customer_id),
                Subscription,
                retryable=True,
            )
        )

    async def set_plan(self, customer_id: str, *, plan: str) -> PlanChange:
        """Operators: move any customer to any plan (same rules as a self-service change).

        `PUT /v1/customers/{customer_id}/subscription`
        """
        return await self._requester._request(
            Call[PlanChange](
                "PUT",
                path("/v1/customers/{customer_id}/subscription", customer_id=customer_id),
                PlanChange,
                json=members({"plan": plan}),
                retryable=True,
            )
        )

    async def set_payment_method(
        self, customer_id: str, *, has_payment_method: bool
    ) -> Subscription:
        """Operators: record whether a payment method is on file (a past_due subscription given one
        becomes active).

        `PUT /v1/customers/{customer_id}/subscription/payment-method`
        """
        return await self._requester._request(
            Call[Subscription](
                "PUT",
                path(
                    "/v1/customers/{customer_id}/subscription/payment-method",
                    customer_id=customer_id,
                ),
                Subscription,
                json=members({"has_payment_method": has_payment_method}),
                retryable=True,
            )
        )
