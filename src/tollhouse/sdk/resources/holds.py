"""`client.holds`: HoldsResource and AsyncHoldsResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, new_idempotency_key, path
from tollhouse.sdk.models.holds import Authorization, Hold, UsageEstimate


class HoldsResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def authorize(
        self,
        *,
        model: str,
        usage: UsageEstimate | None = None,
        customer_id: str | None = None,
        features: list[str] | None = None,
        resource_tier: str | None = None,
        idempotency_key: str | None = None,
    ) -> Authorization:
        """Decide and reserve: 200 with a hold, or 402/403/429 problem+json (nothing reserved).

        Headers: the rate limits (as on gateway calls), `x-tollhouse-balance-micros` (available
        after this hold), `x-tollhouse-credits-low`, and inside a session its `x-tollhouse-
        session-*`.

        Checks scope, model access, `features` and `resource_tier` against the plan, the session
        a model may require (402 `session-required` or `session-ended`; inside a session nothing
        is held and the answer names it, with the `x-tollhouse-session-*` headers), the plan's
        quotas (usage recorded so far this period plus `usage`), the rate limit and the wallet.
        A retry with the same `idempotency_key` answers the first hold again (header
        `Idempotent-Replayed: true`) without counting against the rate limits or quotas again;
        the same key for another model or estimate is 422 `idempotency-key-reused`.

        `POST /v1/authorize`

        `model`: A catalog model id: decides the rate-limit category, plan access and price.

        `usage`: The most the call will use; its price is held.

        `customer_id`: Operator keys name the customer; customer keys act for themselves (their
        own id or `me`; another customer's answers 404).

        `features`: Plan features the call needs (e.g. `batch_generation`): 403 when the plan
        lacks one.

        `resource_tier`: Resource tier the call runs on (small, medium, large, xlarge): 403 when
        not in the plan.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return self._requester._request(
            Call[Authorization](
                "POST",
                "/v1/authorize",
                Authorization,
                json=members(
                    {"idempotency_key": idempotency_key or new_idempotency_key(), "model": model},
                    usage=usage,
                    customer_id=customer_id,
                    features=features,
                    resource_tier=resource_tier,
                ),
                retryable=True,
            )
        )

    def retrieve(self, hold_id: str) -> Hold:
        """Get Hold

        `GET /v1/holds/{hold_id}`
        """
        return self._requester._request(
            Call[Hold]("GET", path("/v1/holds/{hold_id}", hold_id=hold_id), Hold, retryable=True)
        )

    def capture(self, hold_id: str, *, amount_micros: int) -> Hold:
        """Settle at `amount_micros` (<= held); capturing again with the same amount is a no-op.

        `POST /v1/holds/{hold_id}/capture`

        `amount_micros`: The real cost, at most the held amount; the rest is released.
        """
        return self._requester._request(
            Call[Hold](
                "POST",
                path("/v1/holds/{hold_id}/capture", hold_id=hold_id),
                Hold,
                json=members({"amount_micros": amount_micros}),
                retryable=True,
            )
        )

    def void(self, hold_id: str) -> Hold:
        """Release the whole hold; voiding twice is a no-op.

        `POST /v1/holds/{hold_id}/void`
        """
        return self._requester._request(
            Call[Hold](
                "POST", path("/v1/holds/{hold_id}/void", hold_id=hold_id), Hold, retryable=True
            )
        )


class AsyncHoldsResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def authorize(
        self,
        *,
        model: str,
        usage: UsageEstimate | None = None,
        customer_id: str | None = None,
        features: list[str] | None = None,
        resource_tier: str | None = None,
        idempotency_key: str | None = None,
    ) -> Authorization:
        """Decide and reserve: 200 with a hold, or 402/403/429 problem+json (nothing reserved).

        Headers: the rate limits (as on gateway calls), `x-tollhouse-balance-micros` (available
        after this hold), `x-tollhouse-credits-low`, and inside a session its `x-tollhouse-
        session-*`.

        Checks scope, model access, `features` and `resource_tier` against the plan, the session
        a model may require (402 `session-required` or `session-ended`; inside a session nothing
        is held and the answer names it, with the `x-tollhouse-session-*` headers), the plan's
        quotas (usage recorded so far this period plus `usage`), the rate limit and the wallet.
        A retry with the same `idempotency_key` answers the first hold again (header
        `Idempotent-Replayed: true`) without counting against the rate limits or quotas again;
        the same key for another model or estimate is 422 `idempotency-key-reused`.

        `POST /v1/authorize`

        `model`: A catalog model id: decides the rate-limit category, plan access and price.

        `usage`: The most the call will use; its price is held.

        `customer_id`: Operator keys name the customer; customer keys act for themselves (their
        own id or `me`; another customer's answers 404).

        `features`: Plan features the call needs (e.g. `batch_generation`): 403 when the plan
        lacks one.

        `resource_tier`: Resource tier the call runs on (small, medium, large, xlarge): 403 when
        not in the plan.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return await self._requester._request(
            Call[Authorization](
                "POST",
                "/v1/authorize",
                Authorization,
                json=members(
                    {"idempotency_key": idempotency_key or new_idempotency_key(), "model": model},
                    usage=usage,
                    customer_id=customer_id,
                    features=features,
                    resource_tier=resource_tier,
                ),
                retryable=True,
            )
        )

    async def retrieve(self, hold_id: str) -> Hold:
        """Get Hold

        `GET /v1/holds/{hold_id}`
        """
        return await self._requester._request(
            Call[Hold]("GET", path("/v1/holds/{hold_id}", hold_id=hold_id), Hold, retryable=True)
        )

    async def capture(self, hold_id: str, *, amount_micros: int) -> Hold:
        """Settle at `amount_micros` (<= held); capturing again with the same amount is a no-op.

        `POST /v1/holds/{hold_id}/capture`

        `amount_micros`: The real cost, at most the held amount; the rest is released.
        """
        return await self._requester._request(
            Call[Hold](
                "POST",
                path("/v1/holds/{hold_id}/capture", hold_id=hold_id),
                Hold,
                json=members({"amount_micros": amount_micros}),
                retryable=True,
            )
        )

    async def void(self, hold_id: str) -> Hold:
        """Release the whole hold; voiding twice is a no-op.

        `POST /v1/holds/{hold_id}/void`
        """
        return await self._requester._request(
            Call[Hold](
                "POST", path("/v1/holds/{hold_id}/void", hold_id=hold_id), Hold, retryable=True
            )
        )
