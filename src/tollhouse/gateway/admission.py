"""May this principal make this call? Decide, and reserve its cost, before any work is done.

One function serves the gateway and the sidecar `POST /v1/authorize`:

```
principal -> scope -> model access (key, plan) -> session -> rate limit (one decision for requests and
tokens) -> price of the estimate -> hold on the wallet -> low-credit check
```

A call to a model that an active flat session covers is paid by the session (no hold; see
`gateway.session_guard`); a model that requires a session is refused without one.

A denial raises before anything is reserved (the rate limiter is all-or-nothing; a hold that
fails stores nothing, and what the rate limits took for the call is given back), so a refused
call costs the customer nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from tollhouse.catalog import Catalog, Model, ModelNotInPlan, Usage
from tollhouse.gateway.deps import GatewayDeps
from tollhouse.gateway.errors import ModelNotAllowedForKey, OperatorKeyNotBillable
from tollhouse.gateway.quotas import Reservation
from tollhouse.gateway.session_guard import LiveSession
from tollhouse.keys import Principal
from tollhouse.ledger import HoldView
from tollhouse.observability import metrics
from tollhouse.ratelimit import (
    Decision,
    Limit,
    RateLimitCostTooLarge,
    RateLimitStorageError,
    Request,
)

log = logging.getLogger(__name__)

MINUTE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted call: its customer, reserved amount and the limits' state.

    `hold` is None when the estimate costs nothing (nothing to reserve) or a session pays
    for the call (`session`).
    """

    customer_id: str
    model: Model
    estimate: Usage
    estimate_micros: int
    hold: HoldView | None
    rate: Decision
    tokens: Request | None
    """The tokens-per-minute window and what was taken from it (settled after the call)."""
    quota: Reservation | None = None
    """What this call reserved against its plan's quotas (None: nothing capped)."""
    session: LiveSession | None = None
    """The flat session that covers (and pays for) this call, if any."""
    credits_low: bool = False
    """The balance its hold left is below the customer's low-credit threshold."""


def check_model_access(catalog: Catalog, principal: Principal, model: Model) -> None:
    """Raise unless this key and this customer's plan may use `model`.

    Raises:
        ModelNotAllowedForKey: the key's `allowed_models` excludes it (403).
        ModelNotInPlan: the plan's rank is below the model's `min_plan` (403).
    """
    if not principal.can_use_model(model.id):
        raise ModelNotAllowedForKey(
            f"this API key may not use model '{model.id}'", model=model.id, param="model"
        )
    if not catalog.can_use(principal.plan, model.id):
        raise ModelNotInPlan(
            f"model '{model.id}' needs plan '{model.min_plan}' or higher; "
            f"this customer is on '{principal.plan}'",
            model=model.id,
            required_plan=model.min_plan,
            param="model",
        )


@lru_cache(maxsize=1024)
def per_minute(amount: int, scope: str, unit: str, burst: int | None = None) -> Limit:
    """`amount` a minute named `<scope>-<unit>` (e.g. `text-rpm`), built (and validated)
    once per arguments: immutable, and made for every call otherwise (with its header
    items, see `ratelimit.fields`).

    GCRA lets `Limit.amount` through at once, then one every `period / amount`: so a burst
    of `burst` at `amount` a minute is `Limit(burst, 60 * burst / amount)` (default burst:
    `amount`, `Limit(amount, 60 s)`)."""
    if burst is None or burst == amount:
        return Limit(amount, MINUTE_SECONDS, f"{scope}-{unit}")
    return Limit(burst, MINUTE_SECONDS * burst / amount, f"{scope}-{unit}")


def rate_requests(
    catalog: Catalog, principal: Principal, customer_id: str, model: Model, usage: Usage
) -> tuple[list[Request], Request | None]:
    """The `(limit, key, cost)` triples of one call, and the tokens-per-minute one if any.

    Limits are the category's base limits times the plan's multiplier (catalog.limits_for),
    per customer and category; a key with `rate_limit_rpm` adds its own window. The token
    window is charged the whole estimate now, the prompt and the requested output
    (`max_tokens`, else the model's default), and settled to the real usage after the call
    (`gateway.settle.settle`); an estimate above the window's size can never pass
    (`RateLimitCostTooLarge`, 422).

    The windows are named in the `RateLimit-Policy` and `RateLimit` header fields
    `<category>-rpm`, `<category>-tpm` and `api-key-rpm`.
    """
    limits = catalog.limits_for(principal.plan, model.category)
    requests: list[Request] = []
    tokens: Request | None = None
    subject = f"{customer_id}:{model.category}"
    if limits.requests_per_minute is not None:
        requests.append(
            (
                per_minute(limits.requests_per_minute, model.category, "rpm", limits.burst),
                subject + ":rpm",
                1,
            )
        )
    if limits.tokens_per_minute is not None and (usage.input_tokens or usage.output_tokens):
        tokens = (
            per_minute(limits.tokens_per_minute, model.category, "tpm"),
            subject + ":tpm",
            usage.input_tokens + usage.output_tokens,
        )
        if tokens[2] > limits.tokens_per_minute:
            raise RateLimitCostTooLarge(
                f"this call may use {tokens[2]} tokens (its prompt and the output it asks "
                f"for), more than the {limits.tokens_per_minute} tokens per minute of plan "
                f"'{principal.plan}' for '{model.category}' models: ask for fewer output "
                "tokens (max_tokens)",
                cost=tokens[2],
                limit=limits.tokens_per_minute,
            )
        requests.append(tokens)
    if principal.rate_limit_rpm is not None:
        requests.append(
            (per_minute(principal.rate_limit_rpm, "api-key", "rpm"), f"{principal.key_id}:rpm", 1)
        )
    return requests, tokens


async def admit(
    deps: GatewayDeps,
    principal: Principal,
    *,
    model: Model,
    usage: Usage,
    request_id: str,
    idempotency_key: str | None = None,
    features: Sequence[str] = (),
    resource_tier: str | None = None,
) -> Admission:
    """Authorize one call of `model` expected to use at most `usage`, and hold its price.

    Order: scope, model access, entitlements (`features`, `resource_tier`), session (a
    covering active session pays for the call: nothing is held), quotas (the estimate is
    reserved), rate limit, hold. A later refusal releases what an earlier step
    reserved, so a refused call costs nothing and counts against nothing.

    `principal` must act for a customer (an operator acting for one passes that customer's
    principal, see `api/routes/sidecar.py`). The hold expires after the upstream timeout plus
    a minute, so a crashed process never keeps credits reserved for long. `request_id` is
    kept in the hold's metadata; `idempotency_key` (the sidecar's) makes a retry find the
    first hold (the gateway's holds have none: each call is new).

    Raises:
        InsufficientScope: the key lacks `write`.
        OperatorKeyNotBillable: an operator key without a customer.
        ModelNotAllowedForKey, ModelNotInPlan: see `check_model_access`.
        FeatureNotInPlan, ResourceTierNotInPlan: the plan lacks them (403, `required_plan`).
        SessionRequired, SessionEnded: the model needs an active session (402).
        QuotaExceeded: a per-period cap would be passed (429, `resets_at`).
        RateLimitCostTooLarge: the estimate alone exceeds the tokens-per-minute window (422).
        RateLimited: a window is exhausted (429, `retry_after_seconds`).
        InsufficientCredit: the wallet cannot cover the estimate (402).
    """
    principal.require("write")
    customer_id = principal.customer_id
    if customer_id is None:
        raise OperatorKeyNotBillable(
            "operator keys cannot call models: use a key of the customer to bill"
        )
    check_model_access(deps.catalog, principal, model)
    for feature in features:
        deps.catalog.require_feature(principal.plan, feature)
    if resource_tier is not None:
        deps.catalog.require_tier(principal.plan, resource_tier)
    session = await deps.sessions.admit(customer_id, model)
    quota = await deps.quotas.reserve(customer_id, principal.plan, usage)
    requests: list[Request] = []
    try:
        requests, tokens = rate_requests(deps.catalog, principal, customer_id, model, usage)
        decision = await _decide(deps, requests) if requests else Decision(True, [])
        decision.raise_if_denied(f"rate limit reached for '{model.category}' models")
        price = 0 if session is not None else model.price.cost(usage)
        hold = None
        if price > 0:
            timeout = deps.settings.upstream_timeout_seconds + MINUTE_SECONDS
            try:
                hold = await deps.ledger.hold(
                    customer_id,
                    price,
                    idempotency_key=idempotency_key,
                    currency=deps.catalog.currency,
                    expires_at=deps.clock.now() + timedelta(seconds=timeout),
                    metadata={"model": model.id, "key_id": principal.key_id, "request": request_id},
                )
            except BaseException:
                await _refund(deps, requests)
                raise
    except BaseException:
        deps.quotas.settle(quota, None)
        raise
    low = False
    if hold is not None and hold.available_after_micros is not None:
        low = await deps.credits.below(customer_id, hold.available_after_micros)
    return Admission(customer_id, model, usage, price, hold, decision, tokens, quota, session, low)


async def _decide(deps: GatewayDeps, requests: list[Request]) -> Decision:
    """The rate limiter's decision on `requests`, counted in
    `tollhouse_ratelimit_decisions_total` (`backend-unavailable`: the shared store is down
    and the policy is fail-closed, `RateLimitStorageError`)."""
    try:
        decision = await deps.limiter.hit_all(requests)
    except RateLimitStorageError:
        metrics.RATE_BACKEND_UNAVAILABLE.inc()
        raise
    (metrics.RATE_ALLOWED if decision.allowed else metrics.RATE_LIMITED).inc()
    return decision


async def _refund(deps: GatewayDeps, requests: list[Request]) -> None:
    """Give back what a refused call took from the rate limits (logged if that fails: the
    call is refused anyway)."""
    try:
        await asyncio.gather(*(deps.limiter.refund(*request) for request in requests))
    except Exception:
        log.warning("could not give back the rate limits of a refused call", exc_info=True)
