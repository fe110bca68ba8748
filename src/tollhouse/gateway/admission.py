"""May this principal make this call? Decide, and reserve its cost, before any work is done.

One function serves the gateway and the sidecar `POST /v1/authorize`:

```
principal -> scope -> model access (key, plan) -> rate limit (one decision for requests and
tokens) -> price of the estimate -> hold on the wallet
```

A denial raises before anything is reserved (the rate limiter is all-or-nothing, and a hold
that fails stores nothing), so a refused call costs the customer nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from tollhouse.catalog import Catalog, Model, ModelNotInPlan, Usage
from tollhouse.gateway.deps import GatewayDeps
from tollhouse.gateway.errors import ModelNotAllowedForKey, OperatorKeyNotBillable
from tollhouse.gateway.quotas import Reservation
from tollhouse.keys import Principal
from tollhouse.ledger import HoldView
from tollhouse.ratelimit import Decision, Limit

MINUTE_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted call: its customer, reserved amount and the limits' state.

    `hold` is None when the estimate costs nothing (nothing to reserve).
    """

    customer_id: str
    model: Model
    estimate: Usage
    estimate_micros: int
    hold: HoldView | None
    rate: Decision
    token_limit: tuple[Limit, str] | None
    quota: Reservation | None = None
    """What this call reserved against its plan's quotas (None: nothing capped)."""


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
def per_minute(amount: int, scope: str, unit: str) -> Limit:
    """`Limit(amount, 60 s)` named `<scope>-<unit>` (e.g. `text-rpm`), built (and validated)
    once per amount and name: immutable, and made for every call otherwise (with its header
    items, see `ratelimit.fields`)."""
    return Limit(amount, MINUTE_SECONDS, f"{scope}-{unit}")


def rate_requests(
    catalog: Catalog, principal: Principal, customer_id: str, model: Model, usage: Usage
) -> tuple[list[tuple[Limit, str, int]], tuple[Limit, str] | None]:
    """The `(limit, key, cost)` triples of one call, and the tokens-per-minute window if any.

    Limits are the category's base limits times the plan's multiplier (catalog.limits_for),
    per customer and category; a key with `rate_limit_rpm` adds its own window. The token
    window is charged the prompt estimate now (capped at the window size so a huge prompt
    waits instead of failing forever) and the rest of the real usage after the call.

    The windows are named in the `RateLimit-Policy` and `RateLimit` header fields
    `<category>-rpm`, `<category>-tpm` and `api-key-rpm`.
    """
    limits = catalog.limits_for(principal.plan, model.category)
    requests: list[tuple[Limit, str, int]] = []
    token_limit: tuple[Limit, str] | None = None
    subject = f"{customer_id}:{model.category}"
    if limits.requests_per_minute is not None:
        requests.append(
            (per_minute(limits.requests_per_minute, model.category, "rpm"), subject + ":rpm", 1)
        )
    if limits.tokens_per_minute is not None and (usage.input_tokens or usage.output_tokens):
        limit = per_minute(limits.tokens_per_minute, model.category, "tpm")
        cost = max(1, min(usage.input_tokens, limits.tokens_per_minute))
        requests.append((limit, subject + ":tpm", cost))
        token_limit = (limit, subject + ":tpm")
    if principal.rate_limit_rpm is not None:
        requests.append(
            (per_minute(principal.rate_limit_rpm, "api-key", "rpm"), f"{principal.key_id}:rpm", 1)
        )
    return requests, token_limit


async def admit(
    deps: GatewayDeps,
    principal: Principal,
    *,
    model: Model,
    usage: Usage,
    request_id: str,
    features: Sequence[str] = (),
    resource_tier: str | None = None,
    hold_ends_with_call: bool = False,
) -> Admission:
    """Authorize one call of `model` expected to use at most `usage`, and hold its price.

    Order: scope, model access, entitlements (`features`, `resource_tier`), quotas (the
    estimate is reserved), rate limit, hold. A later refusal releases what an earlier step
    reserved, so a refused call costs nothing and counts against nothing.

    `principal` must act for a customer (an operator acting for one passes that customer's
    principal, see `api/routes/sidecar.py`). The hold expires after the upstream timeout plus
    a minute, so a crashed process never keeps credits reserved for long.
    `hold_ends_with_call=True` (the gateway, which settles its own calls) lets the hold be
    answered before its commit (`Ledger.hold`'s `answer_before_commit`); a hold handed to
    another program waits for it.

    Raises:
        InsufficientScope: the key lacks `write`.
        OperatorKeyNotBillable: an operator key without a customer.
        ModelNotAllowedForKey, ModelNotInPlan: see `check_model_access`.
        FeatureNotInPlan, ResourceTierNotInPlan: the plan lacks them (403, `required_plan`).
        QuotaExceeded: a per-period cap would be passed (429, `resets_at`).
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
    quota = await deps.quotas.reserve(customer_id, principal.plan, usage)
    try:
        requests, token_limit = rate_requests(deps.catalog, principal, customer_id, model, usage)
        decision = await deps.limiter.hit_all(requests) if requests else Decision(True, [])
        decision.raise_if_denied(f"rate limit reached for '{model.category}' models")
        price = model.price.cost(usage)
        hold = None
        if price > 0:
            timeout = deps.settings.upstream_timeout_seconds + MINUTE_SECONDS
            hold = await deps.ledger.hold(
                customer_id,
                price,
                idempotency_key=request_id,
                currency=deps.catalog.currency,
                expires_at=deps.clock.now() + timedelta(seconds=timeout),
                metadata={"model": model.id, "key_id": principal.key_id},
                answer_before_commit=hold_ends_with_call,
            )
    except BaseException:
        deps.quotas.settle(quota, None)
        raise
    return Admission(customer_id, model, usage, price, hold, decision, token_limit, quota)
