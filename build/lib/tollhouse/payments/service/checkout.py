"""Checkout: a Stripe Checkout Session selling a credit pack, a session pack or a plan.

The `checkouts` row is written first with the terms sold (so a completed checkout posts what
was sold, whatever the catalog says later), then the Stripe customer is found or made, then
the session is created with an idempotency key from the row's id, and its URL stored. A
replay with the same key answers the same checkout (and finishes one a crash left
`creating`: Stripe answers the same session for the same key).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse import money
from tollhouse.catalog import Catalog
from tollhouse.clock import Clock
from tollhouse.customers import service as customers
from tollhouse.errors import IdempotencyKeyReused, InvalidInput
from tollhouse.ids import new_id
from tollhouse.payments.errors import CheckoutNotFound
from tollhouse.payments.models import (
    Checkout,
    CheckoutStatus,
    PaymentKind,
    Provider,
    ProviderCustomer,
)
from tollhouse.payments.schemas import CheckoutView
from tollhouse.storage import Database

if TYPE_CHECKING:  # the stripe library is imported only where Stripe is configured
    from stripe.params.checkout import SessionCreateParams, SessionCreateParamsLineItemPriceData

    from tollhouse.payments.stripe_api import StripeApi

ItemKind = Literal["credit_pack", "session_pack", "plan"]


@dataclass(frozen=True, slots=True)
class Item:
    """What a checkout sells: a credit pack, a session product's pack of `sessions`, or a
    plan."""

    kind: ItemKind
    name: str
    sessions: int | None = None


@dataclass(frozen=True, slots=True)
class _Sale:
    price_micros: int
    credits_micros: int = 0
    bonus_micros: int = 0
    bonus_expiry_days: int | None = None
    mode: Literal["payment", "subscription"] = "payment"
    interval: Literal["month", "year"] | None = None
    title: str = ""


def _sale(catalog: Catalog, item: Item) -> _Sale:
    """The terms `item` sells at in `catalog`.

    Raises:
        CreditPackNotFound, SessionProductNotFound, PlanNotFound: unknown item.
        InvalidInput: no such pack size; a free plan (nothing to pay).
    """
    if item.kind == "credit_pack":
        pack = catalog.credit_pack(item.name)
        return _Sale(
            pack.price_micros,
            pack.credits_micros,
            pack.bonus_micros,
            pack.bonus_expiry_days,
            title=f"Credit pack {pack.name}",
        )
    if item.kind == "session_pack":
        sold = catalog.session_product(item.name).pack(item.sessions or 0)
        title = f"{sold.sessions} sessions of {item.name}"
        return _Sale(sold.price_micros, sold.price_micros, title=title)
    plan = catalog.plan(item.name)
    if plan.price_micros <= 0:
        msg = f"plan {plan.name!r} is free: change to it without a checkout"
        raise InvalidInput(msg, errors=[{"loc": "plan", "msg": msg}])
    if plan.interval == "once":
        return _Sale(plan.price_micros, title=f"Plan {plan.name}")
    return _Sale(
        plan.price_micros, mode="subscription", interval=plan.interval, title=f"Plan {plan.name}"
    )


async def stripe_customer(db: Database, api: StripeApi, customer_id: str, *, clock: Clock) -> str:
    """The customer's Stripe customer id, made at Stripe (idempotency key from the customer
    id) and recorded on first use.

    Raises:
        CustomerNotFound: no such customer.
        PaymentProviderError: Stripe refused or could not be reached.
    """
    async with db.transaction() as session:
        known = await mapped_customer(session, customer_id)
        if known is not None:
            return known
        customer = await customers.get(session, customer_id)
    made = await api.create_customer(
        customer_id=customer_id,
        name=customer.name,
        email=customer.email,
        idempotency_key=f"tollhouse-customer-{customer_id}",
    )
    try:
        async with db.transaction() as session:
            session.add(
                ProviderCustomer(
                    provider=Provider.STRIPE.value,
                    customer_id=customer_id,
                    provider_customer_id=made,
                    created_at=clock.now(),
                )
            )
    except IntegrityError:
        async with db.transaction() as session:
            known = await mapped_customer(session, customer_id)
        if known is None:
            raise
        return known
    return made


async def mapped_customer(session: AsyncSession, customer_id: str) -> str | None:
    """The customer's Stripe customer id, if it has one."""
    return await session.scalar(
        select(ProviderCustomer.provider_customer_id).where(
            ProviderCustomer.provider == Provider.STRIPE.value,
            ProviderCustomer.customer_id == customer_id,
        )
    )


async def create_checkout(
    db: Database,
    api: StripeApi,
    *,
    catalog: Catalog,
    clock: Clock,
    customer_id: str,
    item: Item,
    success_url: str,
    cancel_url: str,
    idempotency_key: str,
) -> CheckoutView:
    """A Stripe Checkout Session for `item` (its `url` is where the customer pays). Plans
    with an interval become Stripe subscriptions; everything else is paid once, and the card
    is saved for later off-session payments (auto top-up).

    Raises:
        CustomerNotFound: no such customer.
        CreditPackNotFound, SessionProductNotFound, PlanNotFound: unknown item.
        InvalidInput: no such pack size; a free plan; a price that is not a whole number of
            the currency's minor unit.
        IdempotencyKeyReused: the key opened a checkout for another item.
        PaymentProviderError: Stripe refused or could not be reached.
    """
    sale = _sale(catalog, item)
    try:
        unit_amount = money.to_minor_units(sale.price_micros, catalog.currency)
    except ValueError as error:
        raise InvalidInput(str(error), errors=[{"loc": item.kind, "msg": str(error)}]) from None
    row, replayed = await _row(db, customer_id, item, sale, catalog, clock, idempotency_key)
    if row.status != CheckoutStatus.CREATING:
        return CheckoutView.of(row, replayed=replayed)
    stripe_id = await stripe_customer(db, api, customer_id, clock=clock)
    metadata = {
        "tollhouse_checkout": row.id,
        "tollhouse_customer": customer_id,
        "tollhouse_kind": item.kind,
    }
    line: SessionCreateParamsLineItemPriceData = {
        "currency": catalog.currency,
        "unit_amount": unit_amount,
        "product_data": {"name": sale.title},
    }
    if sale.interval is not None:
        line["recurring"] = {"interval": sale.interval}
    params: SessionCreateParams = {
        "mode": sale.mode,
        "customer": stripe_id,
        "client_reference_id": customer_id,
        "line_items": [{"price_data": line, "quantity": 1}],
        "success_url": success_url,
        "cancel_url": cancel_url,
        "metadata": metadata,
    }
    if sale.mode == "subscription":
        params["subscription_data"] = {"metadata": {**metadata, "tollhouse_plan": item.name}}
    else:
        params["payment_intent_data"] = {"setup_future_usage": "off_session", "metadata": metadata}
    created = await api.create_checkout_session(
        params, idempotency_key=f"tollhouse-checkout-{row.id}"
    )
    expires = created.get("expires_at")
    async with db.transaction() as session:
        await session.execute(
            update(Checkout)
            .where(Checkout.id == row.id, Checkout.status == CheckoutStatus.CREATING.value)
            .values(
                status=CheckoutStatus.OPEN.value,
                provider_session_id=str(created["id"]),
                url=created.get("url"),
                expires_at=datetime.fromtimestamp(expires, UTC) if expires else None,
            )
            .execution_options(synchronize_session=False)
        )
        done = await session.get(Checkout, row.id, populate_existing=True)
        assert done is not None
        return CheckoutView.of(done, replayed=replayed)


async def _row(
    db: Database,
    customer_id: str,
    item: Item,
    sale: _Sale,
    catalog: Catalog,
    clock: Clock,
    key: str,
) -> tuple[Checkout, bool]:
    """The checkout row of `key` (checked to be for `item`), inserted `creating` if new."""
    async with db.transaction() as session:
        await customers.get(session, customer_id)
        existing = await _by_key(session, customer_id, key)
        if existing is None:
            row = Checkout(
                id=new_id("chk"),
                customer_id=customer_id,
                provider=Provider.STRIPE.value,
                kind=PaymentKind(item.kind).value,
                item=item.name,
                sessions=item.sessions,
                price_micros=sale.price_micros,
                credits_micros=sale.credits_micros,
                bonus_micros=sale.bonus_micros,
                bonus_expiry_days=sale.bonus_expiry_days,
                currency=catalog.currency,
                mode=sale.mode,
                status=CheckoutStatus.CREATING.value,
                idempotency_key=key,
                created_at=clock.now(),
            )
            try:
                async with session.begin_nested():
                    session.add(row)
                return row, False
            except IntegrityError:
                existing = await _by_key(session, customer_id, key)
                if existing is None:
                    raise
        differ = [
            name
            for name, first, again in (
                ("kind", existing.kind, item.kind),
                ("item", existing.item, item.name),
                ("sessions", existing.sessions, item.sessions),
            )
            if first != again
        ]
        if differ:
            raise IdempotencyKeyReused(
                f"idempotency key {key!r} opened a checkout for another item",
                fields=differ,
                checkout_id=existing.id,
            )
        return existing, True


async def _by_key(session: AsyncSession, customer_id: str, key: str) -> Checkout | None:
    return await session.scalar(
        select(Checkout).where(Checkout.customer_id == customer_id, Checkout.idempotency_key == key)
    )


async def get_checkout(
    session: AsyncSession, checkout_id: str, *, customer_id: str | None = None
) -> CheckoutView:
    """One checkout; with `customer_id`, only that customer's.

    Raises:
        CheckoutNotFound: no such checkout (or another customer's).
    """
    row = await session.get(Checkout, checkout_id)
    if row is None or (customer_id is not None and row.customer_id != customer_id):
        raise CheckoutNotFound(f"no checkout {checkout_id!r}", checkout_id=checkout_id)
    return CheckoutView.of(row)


async def by_session_id(session: AsyncSession, provider_session_id: str) -> Checkout | None:
    """The checkout of a Stripe Checkout Session id, if tollhouse opened it."""
    return await session.scalar(
        select(Checkout).where(Checkout.provider_session_id == provider_session_id)
    )
