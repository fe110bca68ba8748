"""Credits: grant (operator), balance, transaction history, overdraft limit, revoke a grant."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import Field

from tollhouse.api import problems
from tollhouse.api.deps import Reader, RuntimeDep, SessionDep, customer_of, require_operator
from tollhouse.api.schemas import MAX_ROW_ID, RequestBody, ResponseBody, Timestamp
from tollhouse.catalog import service as catalogs
from tollhouse.customers import service as customers
from tollhouse.errors import InvalidInput
from tollhouse.ledger import service as ledger
from tollhouse.server.runtime import Runtime

router = APIRouter(prefix="/v1", tags=["credits"], responses=problems.responses(401, 403))

MAX_MICROS = 2**62


class GrantCreate(RequestBody):
    amount_micros: int = Field(gt=0, le=MAX_MICROS)
    """Credits to add, in micros of the catalog currency (1 USD = 1,000,000)."""
    idempotency_key: str = Field(min_length=1, max_length=128)
    """The same key again with the same fields answers the first grant and adds nothing; with
    other fields it is refused (422 `idempotency-key-reused`)."""
    expires_at: Timestamp | None = None
    priority: int = Field(default=0, ge=-1000, le=1000)
    """Among grants expiring together, lower priority is spent first."""
    source: Literal["promotional", "included", "purchased", "manual"] = "manual"
    description: str = Field(default="", max_length=500)


class GrantOut(ResponseBody):
    id: str
    amount_micros: int
    remaining_micros: int
    expires_at: datetime | None
    priority: int
    source: str


class BalanceOut(ResponseBody):
    customer_id: str
    currency: str
    available_micros: int
    """Spendable now: the sum of live grants, net of holds."""
    held_micros: int
    """Reserved by open holds."""
    overdraft_limit_micros: int
    grants: list[GrantOut]


class TransactionOut(ResponseBody):
    id: int
    transfer_id: str
    kind: str
    amount_micros: int
    """Signed: positive adds to the customer's side."""
    account_kind: str
    hold_id: str | None
    created_at: datetime
    description: str
    hold_metadata: dict[str, Any] | None = None
    """What the entry's hold paid for, as its metadata: `{"model", "key_id", "request"}` for a
    gateway call, `{"purpose": "session_fee", "session_id", "product"}` for a session's fee,
    `{"purpose": "session_pack", ...}` for a pack."""


class OverdraftSet(RequestBody):
    limit_micros: int = Field(ge=0, le=MAX_MICROS)


async def _existing_customer(runtime: Runtime, customer_id: str) -> None:
    """Check the customer exists and this process's currency is the catalog in force's.
    Closes its session before returning: the ledger writer needs the connection next (SQLite
    has one), so no route may hold a session across a write.

    Raises: CustomerNotFound; NotInCatalogInForce."""
    async with runtime.db.transaction() as session:
        await customers.get(session, customer_id)
        await catalogs.require_in_force(session, runtime.catalog, currency=True)


def _grant_out(grant: ledger.GrantView) -> GrantOut:
    return GrantOut(
        id=grant.id,
        amount_micros=grant.amount,
        remaining_micros=grant.remaining,
        expires_at=grant.expires_at,
        priority=grant.priority,
        source=grant.source,
    )


@router.post(
    "/customers/{customer_id}/credits/grants",
    status_code=status.HTTP_201_CREATED,
    responses=problems.replay(GrantOut) | problems.responses(400, 404, 413, 422),
)
async def grant_credits(
    customer_id: str,
    body: GrantCreate,
    principal: Reader,
    runtime: RuntimeDep,
    response: Response,
) -> GrantOut:
    """Add credits to a customer's wallet (operator keys only): 201 with the new grant.

    Idempotent by key, as Stripe's API is: the same key with the same arguments answers 200
    with the first grant (nothing added); with other arguments, 422 `idempotency-key-reused`
    naming the `fields` that differ."""
    require_operator(principal)
    await _existing_customer(runtime, customer_id)
    if body.expires_at is not None and body.expires_at <= runtime.clock.now():
        raise InvalidInput(
            "expires_at is in the past", errors=[{"loc": "expires_at", "msg": "in the past"}]
        )
    grant = await runtime.ledger.grant(
        customer_id,
        body.amount_micros,
        idempotency_key=body.idempotency_key,
        expires_at=body.expires_at,
        priority=body.priority,
        source=body.source,
        description=body.description,
        currency=runtime.catalog.currency,
    )
    if grant.replayed:
        response.status_code = status.HTTP_200_OK
    return _grant_out(grant)


@router.get("/customers/{customer_id}/balance", responses=problems.responses(404, 422))
async def get_balance(
    customer_id: str, principal: Reader, runtime: RuntimeDep, session: SessionDep
) -> BalanceOut:
    """The wallet: available, held, overdraft limit, and each live grant."""
    owner = customer_of(principal, customer_id)
    await customers.get(session, owner)
    balance = await ledger.balance(
        session, owner, currency=runtime.catalog.currency, now=runtime.clock.now()
    )
    return BalanceOut(
        customer_id=owner,
        currency=runtime.catalog.currency,
        available_micros=balance.available_micros,
        held_micros=balance.held_micros,
        overdraft_limit_micros=balance.overdraft_limit_micros,
        grants=[_grant_out(g) for g in balance.grants],
    )


@router.get("/customers/{customer_id}/transactions", responses=problems.responses(404, 422))
async def list_transactions(
    customer_id: str,
    principal: Reader,
    session: SessionDep,
    limit: int = Query(default=50, ge=1, le=500),
    before_id: int | None = Query(
        default=None, ge=1, le=MAX_ROW_ID, description="page: entries older than this id"
    ),
) -> list[TransactionOut]:
    """Ledger entries on the customer's side, newest first."""
    owner = customer_of(principal, customer_id)
    await customers.get(session, owner)
    entries = await ledger.transactions(session, owner, limit=limit, before_id=before_id)
    return [
        TransactionOut(
            id=e.id,
            transfer_id=e.transfer_id,
            kind=e.kind,
            amount_micros=e.amount,
            account_kind=e.account_kind,
            hold_id=e.hold_id,
            created_at=e.created_at,
            description=e.description,
            hold_metadata=dict(e.hold_metadata) if e.hold_metadata is not None else None,
        )
        for e in entries
    ]


@router.put("/customers/{customer_id}/overdraft", responses=problems.responses(400, 404, 413, 422))
async def set_overdraft(
    customer_id: str, body: OverdraftSet, principal: Reader, runtime: RuntimeDep
) -> BalanceOut:
    """Let the wallet go down to `-limit_micros` (operator keys only; 0 = no overdraft)."""
    require_operator(principal)
    await _existing_customer(runtime, customer_id)
    await runtime.ledger.set_overdraft_limit(
        customer_id, body.limit_micros, currency=runtime.catalog.currency
    )
    async with runtime.db.transaction() as session:
        return await get_balance(customer_id, principal, runtime, session)


@router.delete("/grants/{grant_id}", responses=problems.responses(404, 422))
async def revoke_grant(grant_id: str, principal: Reader, runtime: RuntimeDep) -> GrantOut:
    """Take back what is left of a grant (operator keys only); held credits stay held."""
    require_operator(principal)
    return _grant_out(await runtime.ledger.revoke_grant(grant_id))
