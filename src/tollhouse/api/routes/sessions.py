"""Flat sessions: start, read, terminate; prepaid session packs: how many are left, buy one.

A start or a termination is applied by the gateway's session guard at once in this process
and within 2 s in every other (`Runtime.invalidate_sessions`).

A customer key acts on its own sessions (another customer's id answers 404, as if it did not
exist); an operator key acts on any customer and names it (`customer_id`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, ConfigDict, Field

from tollhouse.api import problems
from tollhouse.api.deps import Reader, RuntimeDep, SessionDep, Writer
from tollhouse.api.schemas import RequestBody
from tollhouse.errors import InvalidInput, NotFound
from tollhouse.keys import Principal
from tollhouse.sessions import PackView, SessionStatus, SessionView
from tollhouse.sessions import service as sessions

router = APIRouter(prefix="/v1/sessions", tags=["sessions"], responses=problems.responses(401, 403))

Key = Field(min_length=1, max_length=128)
CustomerQuery = Query(
    default=None, max_length=32, description="Operator keys: the customer (customers: omit it)"
)


class SessionStart(RequestBody):
    product: str = Field(min_length=1, max_length=64)
    """A session product of the catalog (`session_products`)."""
    idempotency_key: str = Key
    """The same key again answers the same session (200) and charges nothing more; the key
    for another product is refused (409)."""
    customer_id: str | None = Field(default=None, max_length=32)
    """Operator keys name the customer; customer keys start their own sessions."""
    auto_renew: bool = False
    """When a cap (tokens or duration) ends the session, the next call it would have
    covered starts a new one, paid like this one (a pack first, else the wallet)."""


class PackBuy(RequestBody):
    product: str = Field(min_length=1, max_length=64)
    sessions: int = Field(ge=1, le=1_000_000)
    """The pack's size: one of the product's `packs`."""
    idempotency_key: str = Key
    """The same key again answers the same pack (200) and charges nothing more."""
    customer_id: str | None = Field(default=None, max_length=32)


class SessionOut(BaseModel):
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
    """`duration`, `tokens` or `terminated` once ended."""
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
    """The ledger hold that paid the fee (wallet): its capture is in the transactions."""
    auto_renew: bool
    """A cap ending it starts the next one on the next covered call."""


class PackOut(BaseModel):
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


class QuotaOut(BaseModel):
    product: str
    sessions_left: int
    """Prepaid sessions of the product not yet started."""


class QuotaList(BaseModel):
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
    responses=problems.responses(400, 402, 404, 409, 413, 422),
)
async def start_session(
    body: SessionStart, principal: Writer, runtime: RuntimeDep, response: Response
) -> SessionOut:
    """Start a flat session: 201, paid from a prepaid pack of the product first, else from
    the wallet at the product's price (402 `insufficient-credit` when it cannot cover it).
    409 `session-active` while one of the product is active; a replay of the key answers
    200 with the same session."""
    customer_id = _customer(principal, body.customer_id)
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
    responses=problems.responses(400, 402, 404, 409, 413, 422),
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


@router.get("/{session_id}", responses=problems.responses(404, 422))
async def get_session(
    session_id: str, principal: Reader, runtime: RuntimeDep, session: SessionDep
) -> SessionOut:
    """One session: usage, cost, seconds and tokens left."""
    view = await sessions.get(
        session, session_id, clock=runtime.clock, customer_id=principal.customer_id
    )
    return _session_out(view)


@router.post("/{session_id}/terminate", responses=problems.responses(404, 422))
async def terminate_session(session_id: str, principal: Writer, runtime: RuntimeDep) -> SessionOut:
    """End a session now (reason `terminated`); an ended one is answered as it is. The fee
    is not refunded. The gateway refuses the session's calls at once here, and in every
    other process within 2 s."""
    async with runtime.db.transaction() as session:
        view = await sessions.terminate(
            session, session_id, clock=runtime.clock, customer_id=principal.customer_id
        )
    await runtime.invalidate_sessions(view.customer_id)
    return _session_out(view)
