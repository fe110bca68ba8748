"""Sessions: start (flat or metered), estimate, read, heartbeat, terminate; prepaid session
packs: how many are left, buy one.

A start or a termination is applied by the gateway's session guard at once in this process
and within 2 s in every other (`Runtime.invalidate_sessions`).

A customer key acts on its own sessions (another customer's id answers 404, as if it did not
exist); an operator key acts on any customer and names it (`customer_id`).

A `{session_id}` path segment only matches a session id (`ses_` and base62 symbols), so the
fixed paths beside it (`/v1/sessions/estimate`) are not also routed to `GET /{session_id}`,
and a 405's `Allow` names only what a path really takes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import ConfigDict, Field
from starlette.convertors import Convertor, register_url_convertor

from tollhouse.api import problems
from tollhouse.api.deps import Reader, RuntimeDep, SessionDep, Writer
from tollhouse.api.schemas import RequestBody, ResponseBody
from tollhouse.catalog import ResourceTier
from tollhouse.errors import InvalidInput, NotFound
from tollhouse.keys import Principal
from tollhouse.sessions import PackView, SessionKind, SessionStatus, SessionView
from tollhouse.sessions import service as sessions
from tollhouse.sessions.service.metered import MAX_ESTIMATE_SECONDS


class _SessionId(Convertor[str]):
    """A path segment that is a session id: `ses_` and base62 symbols."""

    regex = "ses_[0-9A-Za-z]+"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("session_id", _SessionId())

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], responses=problems.responses(401, 403))

Key = Field(min_length=1, max_length=128)
CustomerQuery = Query(
    default=None, max_length=32, description="Operator keys: the customer (customers: omit it)"
)


class SessionStart(RequestBody):
    """Exactly one of `product` (a flat session) and `resource_tier` (a metered one)."""

    product: str | None = Field(default=None, min_length=1, max_length=64)
    """A session product of the catalog (`session_products`): a flat session."""
    resource_tier: ResourceTier | None = None
    """A resource tier of the customer's plan: a metered (compute) session, billed by the
    second at the plan's `session_rates` for it."""
    idempotency_key: str = Key
    """The same key again answers the same session (200) and charges nothing more; the key
    for another product or tier is refused (422 `idempotency-key-reused`)."""
    customer_id: str | None = Field(default=None, max_length=32)
    """Operator keys name the customer; customer keys start their own sessions."""
    auto_renew: bool = False
    """When a cap (tokens or duration) ends the session, the next call it would have
    covered starts a new one, paid like this one (a pack first, else the wallet)."""


class EstimateRequest(RequestBody):
    resource_tier: ResourceTier
    duration_seconds: int = Field(ge=1, le=MAX_ESTIMATE_SECONDS)
    """How long the session would run, in seconds."""
    customer_id: str | None = Field(default=None, max_length=32)
    """Operator keys name the customer (whose plan prices the tier)."""


class PackBuy(RequestBody):
    product: str = Field(min_length=1, max_length=64)
    sessions: int = Field(ge=1, le=1_000_000)
    """The pack's size: one of the product's `packs`."""
    idempotency_key: str = Key
    """The same key again answers the same pack (200) and charges nothing more."""
    customer_id: str | None = Field(default=None, max_length=32)


class SessionOut(ResponseBody):
    model_config = ConfigDict(from_attributes=True)

    id: str
    customer_id: str
    kind: str
    product: str
    status: str
    started_at: datetime
    expires_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    """Once ended: `duration`, `tokens` or `terminated`; metered sessions also `credit` (the
    wallet could not cover the next slice), `heartbeat` (none within the catalog's timeout)
    or `lapsed` (its paid time ran out while no tollhouse process ran)."""
    token_cap: int | None
    tokens_used: int
    tokens_left: int | None
    """None without a token cap; 0 once ended."""
    seconds_left: int | None
    """None without a duration cap; 0 once ended."""
    fee_micros: int
    """What the session cost, in micros of `currency`."""
    currency: str
    paid_with: str
    """`pack` or `wallet`."""
    pack_id: str | None
    hold_id: str | None
    """The ledger hold that paid the fee (wallet), or a metered session's first slice hold:
    its capture is in the transactions."""
    auto_renew: bool
    """A cap ending it starts the next one on the next covered call."""
    resource_tier: str | None
    """Metered: the tier it runs on (None for flat sessions, like the fields below)."""
    rate_micros_per_hour: int | None
    """Metered: the plan's rate for the tier when it started."""
    paid_until: datetime | None
    """Metered: how far its holds cover; extended a slice ahead while it runs."""
    last_heartbeat_at: datetime | None
    cost_micros: int
    """What it costs as of now: a flat session's fee; a running metered session's cost so
    far (per second, rounded up once: `ceil(ceil(seconds) * rate / 3600)`), its final bill
    once ended."""
    billed_micros: int | None
    """Metered: the final bill once ended."""
    settled_at: datetime | None
    """Metered: when its holds were captured and released, after it ended."""


class EstimateOut(ResponseBody):
    model_config = ConfigDict(from_attributes=True)

    resource_tier: str
    plan: str
    """The customer's plan, whose rate prices the tier."""
    rate_micros_per_hour: int
    duration_seconds: int
    cost_micros: int
    """The cost of running `duration_seconds`, in micros of `currency`."""
    min_run_seconds: int
    start_hold_micros: int
    """What a start holds on the wallet (its minimum run): the wallet must cover it."""
    slice_seconds: int
    slice_micros: int
    """What each further slice holds while it runs."""
    currency: str


class PackOut(ResponseBody):
    model_config = ConfigDict(from_attributes=True)

    id: str
    customer_id: str
    product: str
    sessions: int
    sessions_left: int
    price_micros: int
    currency: str
    hold_id: str
    created_at: datetime


class QuotaOut(ResponseBody):
    product: str
    sessions_left: int
    """Prepaid sessions of the product not yet started."""


class QuotaList(ResponseBody):
    customer_id: str
    products: list[QuotaOut]


def _customer(principal: Principal, customer_id: str | None) -> str:
    """The customer the call acts on.

    Raises:
        InvalidInput: an operator key did not name the customer.
        NotFound: a customer key named another customer.
    """
    if principal.customer_id is not None:
        if customer_id not in (None, "me", principal.customer_id):
            raise NotFound(f"customer '{customer_id}' not found")
        return principal.customer_id
    if customer_id is None:
        raise InvalidInput(
            "operator keys must name the customer_id",
            errors=[{"loc": "customer_id", "msg": "required with an operator key"}],
        )
    return customer_id


def _session_out(view: SessionView) -> SessionOut:
    return SessionOut.model_validate(view)


def _pack_out(view: PackView) -> PackOut:
    return PackOut.model_validate(view)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    responses=problems.replay(SessionOut) | problems.responses(400, 402, 404, 409, 413, 422),
)
async def start_session(
    body: SessionStart, principal: Writer, runtime: RuntimeDep, response: Response
) -> SessionOut:
    """Start a session: 201; a replay of the key answers 200 with the same session.

    With `product`, a flat session, paid from a prepaid pack of the product first, else from
    the wallet at the product's price (402 `insufficient-credit` when it cannot cover it);
    409 `session-active` while one of the product is active.

    With `resource_tier`, a metered session billed by the second at the plan's rate: 403
    `resource-tier-not-in-plan` (naming the lowest plan that has it) when the plan does not
    offer the tier, 402 when the wallet cannot cover the minimum run, which is held."""
    customer_id = _customer(principal, body.customer_id)
    if (body.product is None) == (body.resource_tier is None):
        msg = "name exactly one of product (flat session) and resource_tier (metered)"
        raise InvalidInput(msg, errors=[{"loc": "product", "msg": msg}])
    if body.resource_tier is not None and body.auto_renew:
        msg = "auto_renew applies to flat sessions (a metered session runs until it is stopped)"
        raise InvalidInput(msg, errors=[{"loc": "auto_renew", "msg": msg}])
    if body.resource_tier is not None:
        started = await sessions.start_metered(
            runtime.db,
            runtime.ledger,
            catalog=runtime.catalog,
            clock=runtime.clock,
            customer_id=customer_id,
            resource_tier=body.resource_tier,
            idempotency_key=body.idempotency_key,
        )
    else:
        assert body.product is not None
        started = await sessions.start(
            runtime.db,
            runtime.ledger,
            catalog=runtime.catalog,
            clock=runtime.clock,
            customer_id=customer_id,
            product=body.product,
            idempotency_key=body.idempotency_key,
            auto_renew=body.auto_renew,
        )
        await runtime.invalidate_sessions(customer_id)
    if started.replayed:
        response.status_code = status.HTTP_200_OK
    return _session_out(started.session)


@router.post("/estimate", responses=problems.responses(404, 409, 413, 422))
async def estimate_session(
    body: EstimateRequest, principal: Reader, runtime: RuntimeDep, session: SessionDep
) -> EstimateOut:
    """What a metered session on `resource_tier` would cost for `duration_seconds` at the
    customer's plan's rate, and what its start would hold. Nothing is stored. 403
    `resource-tier-not-in-plan` when the plan does not offer the tier."""
    quote = await sessions.estimate(
        session,
        _customer(principal, body.customer_id),
        catalog=runtime.catalog,
        resource_tier=body.resource_tier,
        duration_seconds=body.duration_seconds,
    )
    return EstimateOut.model_validate(quote)


@router.get("/current", responses=problems.responses(404, 422))
async def current_sessions(
    principal: Reader,
    runtime: RuntimeDep,
    session: SessionDep,
    customer_id: str | None = CustomerQuery,
) -> list[SessionOut]:
    """The customer's active sessions (one at most per product), newest first."""
    views = await sessions.list_sessions(
        session,
        clock=runtime.clock,
        customer_id=_customer(principal, customer_id),
        status=SessionStatus.ACTIVE,
        limit=sessions.MAX_PAGE,
    )
    return [_session_out(view) for view in views]


@router.get("/quota", responses=problems.responses(404, 422))
async def session_quota(
    principal: Reader,
    runtime: RuntimeDep,
    session: SessionDep,
    customer_id: str | None = CustomerQuery,
) -> QuotaList:
    """Prepaid sessions left per session product of the catalog."""
    owner = _customer(principal, customer_id)
    left = await sessions.quota(session, owner, catalog=runtime.catalog)
    return QuotaList(
        customer_id=owner,
        products=[QuotaOut(product=q.product, sessions_left=q.sessions_left) for q in left],
    )


@router.post(
    "/quota/add",
    status_code=status.HTTP_201_CREATED,
    responses=problems.replay(PackOut) | problems.responses(400, 402, 404, 409, 413, 422),
)
async def buy_pack(
    body: PackBuy, principal: Writer, runtime: RuntimeDep, response: Response
) -> PackOut:
    """Buy a pack of prepaid sessions from the wallet: 201 (402 `insufficient-credit` when
    the wallet cannot cover its price); a replay of the key answers 200 with the same pack."""
    bought = await sessions.buy_pack(
        runtime.db,
        runtime.ledger,
        catalog=runtime.catalog,
        clock=runtime.clock,
        customer_id=_customer(principal, body.customer_id),
        product=body.product,
        sessions=body.sessions,
        idempotency_key=body.idempotency_key,
    )
    if bought.replayed:
        response.status_code = status.HTTP_200_OK
    return _pack_out(bought.pack)


@router.get("", responses=problems.responses(404, 422))
async def list_sessions(
    principal: Reader,
    runtime: RuntimeDep,
    session: SessionDep,
    customer_id: str | None = CustomerQuery,
    session_status: Literal["active", "ended"] | None = Query(default=None, alias="status"),
    limit: int = Query(default=50, ge=1, le=sessions.MAX_PAGE),
) -> list[SessionOut]:
    """Sessions newest first: the customer's own, or for an operator every customer's (or
    the one named by `customer_id`)."""
    owner = (
        customer_id
        if principal.is_operator and customer_id is not None
        else None
        if principal.is_operator
        else _customer(principal, customer_id)
    )
    views = await sessions.list_sessions(
        session,
        clock=runtime.clock,
        customer_id=owner,
        status=None if session_status is None else SessionStatus(session_status),
        limit=limit,
    )
    return [_session_out(view) for view in views]


@router.get("/{session_id:session_id}", responses=problems.responses(404, 422))
async def get_session(
    session_id: str, principal: Reader, runtime: RuntimeDep, session: SessionDep
) -> SessionOut:
    """One session: usage, cost, seconds and tokens left."""
    view = await sessions.get(
        session, session_id, clock=runtime.clock, customer_id=principal.customer_id
    )
    return _session_out(view)


@router.post("/{session_id:session_id}/heartbeat", responses=problems.responses(402, 404, 409, 422))
async def session_heartbeat(session_id: str, principal: Writer, runtime: RuntimeDep) -> SessionOut:
    """The workload of a running metered session is alive: answers the session. Without one
    for the catalog's `heartbeat_timeout` (when set) the session is stopped. 402
    `session-ended` once it has ended (the workload should stop), 409 `session-not-metered`
    for a flat session."""
    view = await sessions.heartbeat(
        runtime.db,
        runtime.ledger,
        session_id,
        catalog=runtime.catalog,
        clock=runtime.clock,
        customer_id=principal.customer_id,
    )
    return _session_out(view)


@router.post("/{session_id:session_id}/terminate", responses=problems.responses(404, 422))
async def terminate_session(session_id: str, principal: Writer, runtime: RuntimeDep) -> SessionOut:
    """End a session now (reason `terminated`); an ended one is answered as it is. A flat
    session's fee is not refunded, and the gateway refuses its calls at once here and in
    every other process within 2 s; a metered session is billed for its run (per second) and
    its holds captured and released before the answer."""
    view = await sessions.stop(
        runtime.db,
        runtime.ledger,
        session_id,
        catalog=runtime.catalog,
        clock=runtime.clock,
        customer_id=principal.customer_id,
    )
    if view.kind == SessionKind.FLAT:
        await runtime.invalidate_sessions(view.customer_id)
    return _session_out(view)
