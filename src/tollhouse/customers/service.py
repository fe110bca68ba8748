"""Customer service: create, read and page through customers.

Functions take the caller's `AsyncSession` and never commit: the request or task owns the
transaction. They flush so that ids and constraint errors surface inside the call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, or_, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import Clock
from tollhouse.customers.errors import CustomerExists, CustomerNotFound
from tollhouse.customers.models import DEFAULT_PLAN, Customer
from tollhouse.errors import InvalidInput
from tollhouse.ids import new_id

MAX_PAGE = 1000
"""Largest `limit` `list_customers` accepts."""


def _invalid(loc: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{loc}: {msg}", errors=[{"loc": loc, "msg": msg}])


def _check_text(loc: str, value: str, max_length: int) -> str:
    value = value.strip()
    if not value:
        raise _invalid(loc, "must not be empty")
    if len(value) > max_length:
        raise _invalid(loc, f"must be at most {max_length} characters")
    return value


async def create(
    session: AsyncSession,
    *,
    name: str,
    email: str | None = None,
    external_id: str | None = None,
    plan: str = DEFAULT_PLAN,
    clock: Clock,
    metadata: Mapping[str, Any] | None = None,
) -> Customer:
    """Create a customer whose plan mirror starts at `plan` (a catalog plan name; not checked
    against the catalog here). The subscription owns the plan: create customers through
    `subscriptions.create_customer`, which writes the real plan in the same transaction.

    `name` is 1..200 characters after trimming; `email` must contain "@"; `metadata` is a
    JSON-serialisable object stored as is.

    Raises:
        InvalidInput: empty or oversized name, email, external_id or plan.
        CustomerExists: another customer has `external_id`.
    """
    name = _check_text("name", name, 200)
    plan = _check_text("plan", plan, 64)
    if email is not None:
        email = _check_text("email", email, 320)
        if "@" not in email:
            raise _invalid("email", "must be an email address")
    if external_id is not None:
        external_id = _check_text("external_id", external_id, 200)
        existing = await session.scalar(
            select(Customer.id).where(Customer.external_id == external_id)
        )
        if existing is not None:
            raise CustomerExists(
                f"a customer with external_id {external_id!r} exists", external_id=external_id
            )
    customer = Customer(
        id=new_id("cus"),
        name=name,
        email=email,
        external_id=external_id,
        plan=plan,
        created_at=clock.now(),
        metadata_=dict(metadata or {}),
    )
    try:
        # A savepoint, so that losing a race on external_id leaves the caller's
        # transaction usable.
        async with session.begin_nested():
            session.add(customer)
    except IntegrityError as exc:
        raise CustomerExists(
            f"a customer with external_id {external_id!r} exists", external_id=external_id
        ) from exc
    return customer


async def get(session: AsyncSession, customer_id: str) -> Customer:
    """The customer with `customer_id`.

    Raises:
        CustomerNotFound: no such customer.
    """
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise CustomerNotFound(f"no customer {customer_id!r}", customer_id=customer_id)
    return customer


async def get_by_external_id(session: AsyncSession, external_id: str) -> Customer:
    """The customer whose `external_id` is `external_id`.

    Raises:
        CustomerNotFound: no such customer.
    """
    customer = await session.scalar(select(Customer).where(Customer.external_id == external_id))
    if customer is None:
        raise CustomerNotFound(
            f"no customer with external_id {external_id!r}", external_id=external_id
        )
    return customer


async def list_customers(
    session: AsyncSession, *, limit: int = 100, after: str | None = None
) -> list[Customer]:
    """Up to `limit` (1..1000) customers, oldest first, ordered by `(created_at, id)`.

    `after` is a cursor: the id of the last customer of the previous page.

    Raises:
        InvalidInput: `limit` out of range.
        CustomerNotFound: `after` names no customer.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise _invalid("limit", f"must be between 1 and {MAX_PAGE}")
    query = select(Customer).order_by(Customer.created_at, Customer.id).limit(limit)
    if after is not None:
        cursor = await get(session, after)
        query = query.where(
            tuple_(Customer.created_at, Customer.id) > tuple_(cursor.created_at, cursor.id)
        )
    return list(await session.scalars(query))


SORTS = ("name", "newest", "oldest")
"""Orders `search` can list customers in: by name, newest first, oldest first."""


async def search(
    session: AsyncSession,
    text: str = "",
    *,
    limit: int = 50,
    offset: int = 0,
    sort: str = "name",
) -> tuple[list[Customer], int]:
    """Customers whose name, email or id contains `text` (any case; every customer when it
    is blank), in `sort` order (one of `SORTS`; ties by id): `limit` of them from `offset`,
    and how many match in all.

    Raises:
        InvalidInput: `sort` is not one of `SORTS`.
    """
    orders = {
        "name": (Customer.name, Customer.id),
        "newest": (Customer.created_at.desc(), Customer.id.desc()),
        "oldest": (Customer.created_at, Customer.id),
    }
    if sort not in orders:
        raise _invalid("sort", f"must be one of {', '.join(SORTS)}")
    query = select(Customer)
    if text.strip():
        like = f"%{text.strip().lower()}%"
        query = query.where(
            or_(
                func.lower(Customer.name).like(like),
                func.lower(Customer.email).like(like),
                func.lower(Customer.id).like(like),
            )
        )
    total = await session.scalar(select(func.count()).select_from(query.subquery()))
    rows = await session.scalars(query.order_by(*orders[sort]).offset(max(0, offset)).limit(limit))
    return list(rows), int(total or 0)


async def count(session: AsyncSession) -> int:
    """How many customers there are."""
    return int(await session.scalar(select(func.count()).select_from(Customer)) or 0)


async def set_plan(session: AsyncSession, customer_id: str, plan: str) -> Customer:
    """Set the customer's plan mirror to `plan` (a catalog plan name). Written by the
    subscriptions service (`subscriptions.plan` is the source of truth). After the commit,
    call `Runtime.invalidate_customer`: other processes drop their cached plan within 2 s
    (`server/invalidation.py`).

    Raises:
        CustomerNotFound: no such customer.
        InvalidInput: empty or oversized plan name.
    """
    plan = _check_text("plan", plan, 64)
    customer = await get(session, customer_id)
    customer.plan = plan
    await session.flush()
    return customer


COUNTRY_PATTERN = r"^[A-Z]{2}$"
"""A customer's country: an ISO 3166-1 alpha-2 code, upper case (`DE`, `US`)."""
_COUNTRY = re.compile(COUNTRY_PATTERN)


async def set_country(session: AsyncSession, customer_id: str, country: str | None) -> Customer:
    """Set (or, with None, clear) the customer's country, which picks the tax rate of the
    invoices built from now on (`billing`).

    Raises:
        CustomerNotFound: no such customer.
        InvalidInput: not two upper-case letters.
    """
    if country is not None and not _COUNTRY.match(country):
        raise _invalid("country", "must be an ISO 3166-1 alpha-2 code such as 'DE'")
    customer = await get(session, customer_id)
    customer.country = country
    await session.flush()
    return customer


async def plans_in_use(session: AsyncSession) -> set[str]:
    """Every plan name some customer's row is on."""
    return set(await session.scalars(select(Customer.plan).distinct()))
