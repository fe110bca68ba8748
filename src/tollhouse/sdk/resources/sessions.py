"""`client.sessions`: SessionsResource and AsyncSessionsResource.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

import builtins
from typing import Literal

from tollhouse.sdk._base import AsyncRequester, Call, Requester, members, new_idempotency_key, path
from tollhouse.sdk.models.sessions import Estimate, Pack, QuotaList, Session


class SessionsResource:
    def __init__(self, requester: Requester) -> None:
        self._requester = requester

    def start(
        self,
        *,
        product: str | None = None,
        resource_tier: Literal["small", "medium", "large", "xlarge"] | None = None,
        customer_id: str | None = None,
        auto_renew: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Session:
        """Start a session: 201; a replay of the key answers 200 with the same session.

        With `product`, a flat session, paid from a prepaid pack of the product first, else from
        the wallet at the product's price (402 `insufficient-credit` when it cannot cover it);
        409 `session-active` while one of the product is active.

        With `resource_tier`, a metered session billed by the second at the plan's rate: 403
        `resource-tier-not-in-plan` (naming the lowest plan that has it) when the plan does not
        offer the tier, 402 when the wallet cannot cover the minimum run, which is held.

        `POST /v1/sessions`

        `product`: A session product of the catalog (`session_products`): a flat session.

        `resource_tier`: A resource tier of the customer's plan: a metered (compute) session,
        billed by the second at the plan's `session_rates` for it.

        `customer_id`: Operator keys name the customer; customer keys start their own sessions.

        `auto_renew`: When a cap (tokens or duration) ends the session, the next call it would
        have covered starts a new one, paid like this one (a pack first, else the wallet).

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return self._requester._request(
            Call[Session](
                "POST",
                "/v1/sessions",
                Session,
                json=members(
                    {"idempotency_key": idempotency_key or new_idempotency_key()},
                    product=product,
                    resource_tier=resource_tier,
                    customer_id=customer_id,
                    auto_renew=auto_renew,
                ),
                retryable=True,
            )
        )

    def list(
        self,
        *,
        customer_id: str | None = None,
        status: Literal["active", "ended"] | None = None,
        limit: int = 50,
    ) -> builtins.list[Session]:
        """Sessions newest first: the customer's own, or for an operator every customer's (or the
        one named by `customer_id`).

        `GET /v1/sessions`

        `customer_id`: Operator keys: the customer (customers: omit it)
        """
        return self._requester._request(
            Call[builtins.list[Session]](
                "GET",
                "/v1/sessions",
                builtins.list[Session],
                params=members({"limit": limit}, customer_id=customer_id, status=status),
                retryable=True,
            )
        )

    def estimate(
        self,
        *,
        resource_tier: Literal["small", "medium", "large", "xlarge"],
        duration_seconds: int,
        customer_id: str | None = None,
    ) -> Estimate:
        """What a metered session on `resource_tier` would cost for `duration_seconds` at the
        customer's plan's rate, and what its start would hold. Nothing is stored. 403 `resource-
        tier-not-in-plan` when the plan does not offer the tier.

        `POST /v1/sessions/estimate`

        `duration_seconds`: How long the session would run, in seconds.

        `customer_id`: Operator keys name the customer (whose plan prices the tier).
        """
        return self._requester._request(
            Call[Estimate](
                "POST",
                "/v1/sessions/estimate",
                Estimate,
                json=members(
                    {"resource_tier": resource_tier, "duration_seconds": duration_seconds},
                    customer_id=customer_id,
                ),
                retryable=True,
            )
        )

    def current(self, *, customer_id: str | None = None) -> builtins.list[Session]:
        """The customer's active sessions (one at most per product), newest first.

        `GET /v1/sessions/current`

        `customer_id`: Operator keys: the customer (customers: omit it)
        """
        return self._requester._request(
            Call[builtins.list[Session]](
                "GET",
                "/v1/sessions/current",
                builtins.list[Session],
                params=members({}, customer_id=customer_id),
                retryable=True,
            )
        )

    def quota(self, *, customer_id: str | None = None) -> QuotaList:
        """Prepaid sessions left per session product of the catalog.

        `GET /v1/sessions/quota`

        `customer_id`: Operator keys: the customer (customers: omit it)
        """
        return self._requester._request(
            Call[QuotaList](
                "GET",
                "/v1/sessions/quota",
                QuotaList,
                params=members({}, customer_id=customer_id),
                retryable=True,
            )
        )

    def buy_pack(
        self,
        *,
        product: str,
        sessions: int,
        customer_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Pack:
        """Buy a pack of prepaid sessions from the wallet: 201 (402 `insufficient-credit` when the
        wallet cannot cover its price); a replay of the key answers 200 with the same pack.

        `POST /v1/sessions/quota/add`

        `sessions`: The pack's size: one of the product's `packs`.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return self._requester._request(
            Call[Pack](
                "POST",
                "/v1/sessions/quota/add",
                Pack,
                json=members(
                    {
                        "idempotency_key": idempotency_key or new_idempotency_key(),
                        "product": product,
                        "sessions": sessions,
                    },
                    customer_id=customer_id,
                ),
                retryable=True,
            )
        )

    def retrieve(self, session_id: str) -> Session:
        """One session: usage, cost, seconds and tokens left.

        `GET /v1/sessions/{session_id}`
        """
        return self._requester._request(
            Call[Session](
                "GET",
                path("/v1/sessions/{session_id}", session_id=session_id),
                Session,
                retryable=True,
            )
        )

    def heartbeat(self, session_id: str) -> Session:
        """The workload of a running metered session is alive: answers the session. Without one for
        the catalog's `heartbeat_timeout` (when set) the session is stopped. 402 `session-ended`
        once it has ended (the workload should stop), 409 `session-not-metered` for a flat
        session.

        `POST /v1/sessions/{session_id}/heartbeat`
        """
        return self._requester._request(
            Call[Session](
                "POST", path("/v1/sessions/{session_id}/heartbeat", session_id=session_id), Session
            )
        )

    def terminate(self, session_id: str) -> Session:
        """End a session now (reason `terminated`); an ended one is answered as it is. A flat
        session's fee is not refunded, and the gateway refuses its calls at once here and in
        every other process within 2 s; a metered session is billed for its run (per second) and
        its holds captured and released before the answer.

        `POST /v1/sessions/{session_id}/terminate`
        """
        return self._requester._request(
            Call[Session](
                "POST",
                path("/v1/sessions/{session_id}/terminate", session_id=session_id),
                Session,
                retryable=True,
            )
        )


class AsyncSessionsResource:
    def __init__(self, requester: AsyncRequester) -> None:
        self._requester = requester

    async def start(
        self,
        *,
        product: str | None = None,
        resource_tier: Literal["small", "medium", "large", "xlarge"] | None = None,
        customer_id: str | None = None,
        auto_renew: bool | None = None,
        idempotency_key: str | None = None,
    ) -> Session:
        """Start a session: 201; a replay of the key answers 200 with the same session.

        With `product`, a flat session, paid from a prepaid pack of the product first, else from
        the wallet at the product's price (402 `insufficient-credit` when it cannot cover it);
        409 `session-active` while one of the product is active.

        With `resource_tier`, a metered session billed by the second at the plan's rate: 403
        `resource-tier-not-in-plan` (naming the lowest plan that has it) when the plan does not
        offer the tier, 402 when the wallet cannot cover the minimum run, which is held.

        `POST /v1/sessions`

        `product`: A session product of the catalog (`session_products`): a flat session.

        `resource_tier`: A resource tier of the customer's plan: a metered (compute) session,
        billed by the second at the plan's `session_rates` for it.

        `customer_id`: Operator keys name the customer; customer keys start their own sessions.

        `auto_renew`: When a cap (tokens or duration) ends the session, the next call it would
        have covered starts a new one, paid like this one (a pack first, else the wallet).

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return await self._requester._request(
            Call[Session](
                "POST",
                "/v1/sessions",
                Session,
                json=members(
                    {"idempotency_key": idempotency_key or new_idempotency_key()},
                    product=product,
                    resource_tier=resource_tier,
                    customer_id=customer_id,
                    auto_renew=auto_renew,
                ),
                retryable=True,
            )
        )

    async def list(
        self,
        *,
        customer_id: str | None = None,
        status: Literal["active", "ended"] | None = None,
        limit: int = 50,
    ) -> builtins.list[Session]:
        """Sessions newest first: the customer's own, or for an operator every customer's (or the
        one named by `customer_id`).

        `GET /v1/sessions`

        `customer_id`: Operator keys: the customer (customers: omit it)
        """
        return await self._requester._request(
            Call[builtins.list[Session]](
                "GET",
                "/v1/sessions",
                builtins.list[Session],
                params=members({"limit": limit}, customer_id=customer_id, status=status),
                retryable=True,
            )
        )

    async def estimate(
        self,
        *,
        resource_tier: Literal["small", "medium", "large", "xlarge"],
        duration_seconds: int,
        customer_id: str | None = None,
    ) -> Estimate:
        """What a metered session on `resource_tier` would cost for `duration_seconds` at the
        customer's plan's rate, and what its start would hold. Nothing is stored. 403 `resource-
        tier-not-in-plan` when the plan does not offer the tier.

        `POST /v1/sessions/estimate`

        `duration_seconds`: How long the session would run, in seconds.

        `customer_id`: Operator keys name the customer (whose plan prices the tier).
        """
        return await self._requester._request(
            Call[Estimate](
                "POST",
                "/v1/sessions/estimate",
                Estimate,
                json=members(
                    {"resource_tier": resource_tier, "duration_seconds": duration_seconds},
                    customer_id=customer_id,
                ),
                retryable=True,
            )
        )

    async def current(self, *, customer_id: str | None = None) -> builtins.list[Session]:
        """The customer's active sessions (one at most per product), newest first.

        `GET /v1/sessions/current`

        `customer_id`: Operator keys: the customer (customers: omit it)
        """
        return await self._requester._request(
            Call[builtins.list[Session]](
                "GET",
                "/v1/sessions/current",
                builtins.list[Session],
                params=members({}, customer_id=customer_id),
                retryable=True,
            )
        )

    async def quota(self, *, customer_id: str | None = None) -> QuotaList:
        """Prepaid sessions left per session product of the catalog.

        `GET /v1/sessions/quota`

        `customer_id`: Operator keys: the customer (customers: omit it)
        """
        return await self._requester._request(
            Call[QuotaList](
                "GET",
                "/v1/sessions/quota",
                QuotaList,
                params=members({}, customer_id=customer_id),
                retryable=True,
            )
        )

    async def buy_pack(
        self,
        *,
        product: str,
        sessions: int,
        customer_id: str | None = None,
        idempotency_key: str | None = None,
    ) -> Pack:
        """Buy a pack of prepaid sessions from the wallet: 201 (402 `insufficient-credit` when the
        wallet cannot cover its price); a replay of the key answers 200 with the same pack.

        `POST /v1/sessions/quota/add`

        `sessions`: The pack's size: one of the product's `packs`.

        `idempotency_key`: the same key again applies nothing more; default: one generated for
        this call (every retry sends it).
        """
        return await self._requester._request(
            Call[Pack](
                "POST",
                "/v1/sessions/quota/add",
                Pack,
                json=members(
                    {
                        "idempotency_key": idempotency_key or new_idempotency_key(),
                        "product": product,
                        "sessions": sessions,
                    },
                    customer_id=customer_id,
                ),
                retryable=True,
            )
        )

    async def retrieve(self, session_id: str) -> Session:
        """One session: usage, cost, seconds and tokens left.

        `GET /v1/sessions/{session_id}`
        """
        return await self._requester._request(
            Call[Session](
                "GET",
                path("/v1/sessions/{session_id}", session_id=session_id),
                Session,
                retryable=True,
            )
        )

    async def heartbeat(self, session_id: str) -> Session:
        """The workload of a running metered session is alive: answers the session. Without one for
        the catalog's `heartbeat_timeout` (when set) the session is stopped. 402 `session-ended`
        once it has ended (the workload should stop), 409 `session-not-metered` for a flat
        session.

        `POST /v1/sessions/{session_id}/heartbeat`
        """
        return await self._requester._request(
            Call[Session](
                "POST", path("/v1/sessions/{session_id}/heartbeat", session_id=session_id), Session
            )
        )

    async def terminate(self, session_id: str) -> Session:
        """End a session now (reason `terminated`); an ended one is answered as it is. A flat
        session's fee is not refunded, and the gateway refuses its calls at once here and in
        every other process within 2 s; a metered session is billed for its run (per second) and
        its holds captured and released before the answer.

        `POST /v1/sessions/{session_id}/terminate`
        """
        return await self._requester._request(
            Call[Session](
                "POST",
                path("/v1/sessions/{session_id}/terminate", session_id=session_id),
                Session,
                retryable=True,
            )
        )
