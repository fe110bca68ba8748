"""`/v1/customers`: create (operator), list (operator), read (operator or the customer),
change its country (operator)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import APIRouter, Query, status
from pydantic import Field, field_validator

from tollhouse.api import problems
from tollhouse.api.deps import Reader, RuntimeDep, SessionDep, customer_of, require_operator
from tollhouse.api.schemas import RequestBody, ResponseBody
from tollhouse.customers import Customer
from tollhouse.customers import service as customers
from tollhouse.subscriptions import service as subscriptions

router = APIRouter(
    prefix="/v1/customers", tags=["customers"], responses=problems.responses(401, 403)
)


class CustomerCreate(RequestBody):
    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    external_id: str | None = Field(default=None, min_length=1, max_length=128)
    """Your own id for this customer (unique)."""
    plan: str | None = None
    """Catalog plan name; default: the catalog's default plan."""
    timezone: str = Field(default="UTC", max_length=64)
    """IANA time zone of the customer: billing periods start at its local midnight."""
    country: str | None = Field(default=None, pattern=customers.COUNTRY_PATTERN)
    """ISO 3166-1 alpha-2 code (`DE`): its invoices' tax rate (`TOLLHOUSE_TAX_RATES`)."""

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


class CustomerUpdate(RequestBody):
    country: str | None = Field(pattern=customers.COUNTRY_PATTERN)
    """ISO 3166-1 alpha-2 code (`DE`), or null: the tax rate of invoices built from now on."""


class CustomerOut(ResponseBody):
    id: str
    name: str
    email: str | None
    external_id: str | None
    plan: str
    created_at: datetime
    country: str | None = None

    @classmethod
    def of(cls, customer: Customer) -> CustomerOut:
        return cls(
            id=customer.id,
            name=customer.name,
            email=customer.email,
            external_id=customer.external_id,
            plan=customer.plan,
            created_at=customer.created_at,
            country=customer.country,
        )


@router.post(
    "", status_code=status.HTTP_201_CREATED, responses=problems.responses(400, 404, 409, 413, 422)
)
async def create_customer(
    body: CustomerCreate, principal: Reader, runtime: RuntimeDep
) -> CustomerOut:
    """Create a customer (operator keys only), subscribed at once to `plan` (default: the
    catalog's default plan) in `timezone`; the plan's included credits are granted."""
    require_operator(principal)
    async with runtime.db.transaction() as session:
        customer = await subscriptions.create_customer(
            session,
            name=body.name,
            email=body.email,
            external_id=body.external_id,
            plan=body.plan,
            timezone=body.timezone,
            catalog=runtime.catalog,
            clock=runtime.clock,
        )
        await customers.set_country(session, customer.id, body.country)
    await subscriptions.deliver_grants(
        runtime.db, ledger=runtime.ledger, clock=runtime.clock, customer_id=customer.id
    )
    return CustomerOut.of(customer)


@router.get("", responses=problems.responses(404, 422))
async def list_customers(
    principal: Reader,
    session: SessionDep,
    limit: int = Query(default=100, ge=1, le=1000),
    after: str | None = Query(
        default=None, description="id of the last customer of the previous page"
    ),
) -> list[CustomerOut]:
    """Customers in id order, `limit` per page (operator keys only)."""
    require_operator(principal)
    found = await customers.list_customers(session, limit=limit, after=after)
    return [CustomerOut.of(c) for c in found]


@router.get("/{customer_id}", responses=problems.responses(404, 422))
async def get_customer(customer_id: str, principal: Reader, session: SessionDep) -> CustomerOut:
    """One customer; `me` is the caller's own."""
    return CustomerOut.of(await customers.get(session, customer_of(principal, customer_id)))


@router.patch("/{customer_id}", responses=problems.responses(400, 404, 413, 422))
async def update_customer(
    customer_id: str, body: CustomerUpdate, principal: Reader, runtime: RuntimeDep
) -> CustomerOut:
    """Change a customer's country (operator keys only)."""
    require_operator(principal)
    async with runtime.db.transaction() as session:
        customer = await customers.set_country(session, customer_id, body.country)
    return CustomerOut.of(customer)
