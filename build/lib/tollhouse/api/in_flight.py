"""In-flight caps on the gateway's calls: an ASGI wrapper around `routes.gateway.call_model`.

A customer's plan may cap how many gateway requests it has under way at once
(`max_in_flight` in the catalog), and a key may carry a cap of its own (`max_in_flight`).
Before the body is read, and so before any hold, the call takes a slot under each cap
(`ratelimit.InFlightLimiter`: Redis when configured, shared by every process; memory
otherwise). At a cap it is answered 429 `in-flight-limit` with `Retry-After: 1`, in the
route's error shape (OpenAI's; Anthropic's on `/v1/messages`). The slot is given back when the call's answer is over: a whole answer sent (and
settled), a stream ended, the client gone mid-stream, or an error answered; a process that
dies stops renewing its slots' leases, which free themselves a lease later
(`TOLLHOUSE_IN_FLIGHT_LEASE_SECONDS`).

The check reads the key cache and the in-flight storage only, never the database; a call
without any cap (its key has none, its plan has none) costs nothing here but that lookup,
whose principal the handler reuses (`PRINCIPAL`: a key is authenticated once per call).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from tollhouse.api.problems import problem_response_at
from tollhouse.catalog import Catalog
from tollhouse.errors import TollhouseError
from tollhouse.keys import Principal
from tollhouse.ratelimit import Cap
from tollhouse.server.runtime import Runtime

PRINCIPAL = "tollhouse.principal"
"""The ASGI scope member that carries the call's authenticated `Principal` to the handler."""


def caps_for(catalog: Catalog, principal: Principal) -> list[Cap]:
    """The key's own cap and its customer's plan's, those that exist."""
    caps = []
    if principal.max_in_flight is not None:
        caps.append(Cap("api-key", principal.key_id, principal.max_in_flight))
    plan = catalog.plans.get(principal.plan)
    if principal.customer_id is not None and plan is not None and plan.max_in_flight is not None:
        caps.append(Cap("customer", principal.customer_id, plan.max_in_flight))
    return caps


class InFlightCaps:
    """Wraps the gateway's ASGI handler; see the module docstring. `key_of(scope)` is the
    call's key (`routes.gateway.call_key`; raises `Unauthenticated`)."""

    def __init__(self, app: ASGIApp, *, key_of: Callable[[Scope], str]) -> None:
        self.app = app
        self.key_of = key_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        runtime: Runtime = scope["app"].state.runtime
        try:
            principal = await runtime.authenticator.authenticate(self.key_of(scope))
        except TollhouseError:  # the handler answers it (401) as it would without caps
            await self.app(scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        caps = caps_for(runtime.catalog, principal)
        if not caps:
            await self.app(scope, receive, send)
            return
        try:
            lease = await runtime.in_flight.acquire(caps)
        except TollhouseError as error:  # TooManyInFlight (429), RateLimitStorageError (503)
            runtime.note_denial(principal, error, model=None, route=scope["path"])
            response = problem_response_at(error, scope["path"])
            await response(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            await runtime.in_flight.release(lease)
