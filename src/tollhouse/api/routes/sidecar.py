"""The sidecar trio for apps that call their models themselves.

`POST /v1/authorize` asks "may this customer make this call?" and, if so, holds its price;
`POST /v1/holds/{id}/capture` settles the real cost (the rest is released) and
`POST /v1/holds/{id}/void` releases it all. Usage is reported with `POST /v1/usage/events`.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import Field

from tollhouse.api import problems
from tollhouse.api.deps import Reader, RuntimeDep, Writer, customer_of
from tollhouse.api.schemas import RequestBody, ResponseBody
from tollhouse.catalog import Model, Usage
from tollhouse.customers import service as customers
from tollhouse.errors import IdempotencyKeyReused, InvalidInput, TollhouseError
from tollhouse.gateway.admission import admit
from tollhouse.ids import new_id
from tollhouse.keys import Principal
from tollhouse.ledger import HoldView
from tollhouse.ledger import service as ledger
from tollhouse.ratelimit import headers as rate_headers
from tollhouse.server.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["sidecar"], responses=problems.responses(401, 403))


class UsageEstimate(RequestBody):
    requests: int = Field(default=1, ge=0, le=1_000_000)
    input_tokens: int = Field(default=0, ge=0, le=10**12)
    output_tokens: int = Field(default=0, ge=0, le=10**12)
    images: int = Field(default=0, ge=0, le=10**6)
    characters: int = Field(default=0, ge=0, le=10**12)


class AuthorizeIn(RequestBody):
    model: str
    """A catalog model id: decides the rate-limit category, plan access and price."""
    usage: UsageEstimate = Field(default_factory=UsageEstimate)
    """The most the call will use; its price is held."""
    customer_id: str | None = None
    """Operator keys name the customer; customer keys act for themselves (their own id or
    `me`; another customer's answers 404)."""
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)
    """The same key again returns the same hold instead of a second one."""
    features: list[str] = Field(default_factory=list, max_length=32)
    """Plan features the call needs (e.g. `batch_generation`): 403 when the plan lacks one."""
    resource_tier: str | None = Field(default=None, max_length=32)
    """Resource tier the call runs on (small, medium, large, xlarge): 403 when not in the plan."""


class HoldOut(ResponseBody):
    id: str
    customer_id: str
    amount_micros: int
    captured_micros: int
    status: str
    created_at: datetime
    expires_at: datetime | None

    @classmethod
    def of(cls, hold: HoldView) -> HoldOut:
        return cls(
            id=hold.id,
            customer_id=hold.customer_id,
            amount_micros=hold.amount,
            captured_micros=hold.captured_amount,
            status=hold.status,
            created_at=hold.created_at,
            expires_at=hold.expires_at,
        )


class SessionUse(ResponseBody):
    """The flat session a call runs in (and is paid by)."""

    id: str
    product: str
    tokens_left: int | None
    """None without a token cap."""
    seconds_left: int | None
    """None without a duration cap."""


class AuthorizeOut(ResponseBody):
    allowed: bool
    customer_id: str
    model: str
    amount_micros: int
    """Price of the estimate: held now, settled by capture (0 inside a session)."""
    hold: HoldOut | None
    """None when the estimate costs nothing, or a session pays for the call."""
    session: SessionUse | None = None
    """The session that covers the call: report its usage with `session_id` set on the
    usage events (`POST /v1/usage/events`), so its tokens count toward the session's cap."""
    balance_micros: int | None = None
    """The wallet's available credit after this hold (`x-tollhouse-balance-micros`); None
    when nothing was held, or for a replay."""
    headers: dict[str, str]
    """This answer's rate-limit, balance, low-credit and session header fields, for the
    application to add to its own response to the caller (`tollhouse.integrations` does)."""


class CaptureIn(RequestBody):
    amount_micros: int = Field(ge=0, le=2**62)
    """The real cost, at most the held amount; the rest is released."""


async def _acting_principal(
    runtime: Runtime, principal: Principal, customer_id: str | None
) -> Principal:
    """The principal to admit: the caller, or for an operator the named customer's view.

    Raises:
        NotFound: a customer key named another customer (`customer_of`: as if unknown).
    """
    if principal.customer_id is not None:
        if customer_id is not None:
            customer_of(principal, customer_id)
        return principal
    if customer_id is None:
        raise InvalidInput(
            "operator keys must name the customer_id",
            errors=[{"loc": "customer_id", "msg": "required with an operator key"}],
        )
    async with runtime.db.transaction() as session:
        customer = await customers.get(session, customer_id)
    return dataclasses.replace(principal, customer_id=customer.id, plan=customer.plan)


@dataclasses.dataclass(frozen=True, slots=True)
class Authorized:
    """The answer of an authorization (its `headers` are the response's too), and whether it
    replays an earlier one."""

    answer: AuthorizeOut
    replayed: bool = False


async def authorize_for(runtime: Runtime, principal: Principal, body: AuthorizeIn) -> Authorized:
    """`POST /v1/authorize` in-process (also `tollhouse.integrations`): decide, and hold the
    estimate's price. See `authorize`; raises its problems (`TollhouseError`)."""
    acting = await _acting_principal(runtime, principal, body.customer_id)
    model = runtime.catalog.model(body.model)
    usage = Usage(**body.usage.model_dump())
    if body.idempotency_key is not None:
        replayed = await _replayed(runtime, acting, model, usage, body.idempotency_key)
        if replayed is not None:
            return Authorized(replayed, replayed=True)
    try:
        admission = await admit(
            runtime,
            acting,
            model=model,
            usage=usage,
            request_id=new_id("auth"),
            idempotency_key=body.idempotency_key,
            features=body.features,
            resource_tier=body.resource_tier,
        )
    except TollhouseError as error:
        runtime.note_denial(acting, error, model=model.id, route="/v1/authorize")
        raise
    # The app reports what it used with POST /v1/usage/events: the quota check is all here.
    runtime.quotas.settle(admission.quota, None)
    headers = rate_headers(admission.rate.stats)
    hold = admission.hold
    balance = hold.available_after_micros if hold is not None else None
    if balance is not None:
        headers["x-tollhouse-balance-micros"] = str(balance)
    if admission.credits_low:
        headers["x-tollhouse-credits-low"] = "true"
    live = admission.session
    now = runtime.clock.now()
    if live is not None:
        headers.update(dict(live.headers(now)))
    answer = AuthorizeOut(
        allowed=True,
        customer_id=admission.customer_id,
        model=model.id,
        amount_micros=admission.estimate_micros,
        hold=HoldOut.of(admission.hold) if admission.hold is not None else None,
        session=None
        if live is None
        else SessionUse(
            id=live.id,
            product=live.product,
            tokens_left=live.tokens_left(),
            seconds_left=live.seconds_left(now),
        ),
        balance_micros=balance,
        headers=headers,
    )
    return Authorized(answer)


@router.post("/authorize", responses=problems.responses(400, 402, 404, 409, 413, 422, 429, 503))
async def authorize(
    body: AuthorizeIn, principal: Writer, runtime: RuntimeDep, response: Response
) -> AuthorizeOut:
    """Decide and reserve: 200 with a hold, or 402/403/429 problem+json (nothing reserved).

    Headers: the rate limits (as on gateway calls), `x-tollhouse-balance-micros` (available
    after this hold), `x-tollhouse-credits-low`, and inside a session its
    `x-tollhouse-session-*`.

    Checks scope, model access, `features` and `resource_tier` against the plan, the
    session a model may require (402 `session-required` or `session-ended`; inside a session
    nothing is held and the answer names it, with the `x-tollhouse-session-*` headers), the
    plan's quotas (usage recorded so far this period plus `usage`), the rate limit and the
    wallet.
    A retry with the same `idempotency_key` answers the first hold again (header
    `Idempotent-Replayed: true`) without counting against the rate limits or quotas again;
    the same key for another model or estimate is 422 `idempotency-key-reused`.
    """
    authorized = await authorize_for(runtime, principal, body)
    response.headers.update(authorized.answer.headers)
    if authorized.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return authorized.answer


async def _replayed(
    runtime: Runtime, acting: Principal, model: Model, usage: Usage, idempotency_key: str
) -> AuthorizeOut | None:
    """The answer already given to this idempotency key, or None when it is new.

    Raises:
        IdempotencyKeyReused: the key's hold was made for another model or estimate.
    """
    assert acting.customer_id is not None
    async with runtime.db.transaction() as session:
        hold = await ledger.find_hold(session, acting.customer_id, idempotency_key)
    if hold is None:
        return None
    differ = [
        name
        for name, same in (
            ("model", hold.metadata.get("model") == model.id),
            ("usage", hold.amount == model.price.cost(usage)),
        )
        if not same
    ]
    if differ:
        raise IdempotencyKeyReused(
            f"idempotency key {idempotency_key!r} was used for another authorization",
            fields=differ,
            hold_id=hold.id,
        )
    return AuthorizeOut(
        allowed=True,
        customer_id=hold.customer_id,
        model=model.id,
        amount_micros=hold.amount,
        hold=HoldOut.of(hold),
        headers={},
    )


@router.get("/holds/{hold_id}", responses=problems.responses(404, 422))
async def get_hold(hold_id: str, principal: Reader, runtime: RuntimeDep) -> HoldOut:
    async with runtime.db.transaction() as session:
        hold = await ledger.get_hold(session, hold_id, customer_id=principal.customer_id)
    return HoldOut.of(hold)


@router.post("/holds/{hold_id}/capture", responses=problems.responses(400, 404, 409, 413, 422))
async def capture(hold_id: str, body: CaptureIn, principal: Writer, runtime: RuntimeDep) -> HoldOut:
    """Settle at `amount_micros` (<= held); capturing again with the same amount is a no-op."""
    hold = await runtime.ledger.capture(
        hold_id, body.amount_micros, customer_id=principal.customer_id
    )
    return HoldOut.of(hold)


@router.post("/holds/{hold_id}/void", responses=problems.responses(404, 409, 422))
async def void(hold_id: str, principal: Writer, runtime: RuntimeDep) -> HoldOut:
    """Release the whole hold; voiding twice is a no-op."""
    return HoldOut.of(await runtime.ledger.void(hold_id, customer_id=principal.customer_id))
