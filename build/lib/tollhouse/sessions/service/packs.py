"""Prepaid session packs: buy one from the wallet, count what is left per product."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Catalog
from tollhouse.clock import Clock
from tollhouse.customers import service as customers
from tollhouse.errors import IdempotencyKeyReused
from tollhouse.ids import new_id
from tollhouse.ledger import Ledger
from tollhouse.sessions.models import SessionPack
from tollhouse.sessions.schemas import Bought, PackView, Quota
from tollhouse.sessions.service.lifecycle import check_key
from tollhouse.storage import Database

PACK_HOLD_PREFIX = "session-pack:"
"""A pack purchase's hold key: this prefix and the purchase's idempotency key."""


async def buy_pack(
    db: Database,
    ledger: Ledger,
    *,
    catalog: Catalog,
    clock: Clock,
    customer_id: str,
    product: str,
    sessions: int,
    idempotency_key: str,
) -> Bought:
    """Buy the product's pack of `sessions` sessions from the wallet, at the pack's price.

    Raises:
        InvalidInput: the product sells no pack of that size; bad idempotency key.
        CustomerNotFound, SessionProductNotFound: unknown customer or product.
        InsufficientCredit: the wallet cannot cover the price (nothing stored).
        IdempotencyKeyReused: the key bought another product or pack size.
    """
    key = check_key(idempotency_key)
    pack = catalog.session_product(product).pack(sessions)
    async with db.transaction() as session:
        await customers.get(session, customer_id)
        existing = await _pack_by_key(session, customer_id, key)
    if existing is not None:
        return await _replayed_pack(ledger, existing, product, sessions, key)
    hold = await ledger.hold(
        customer_id,
        pack.price_micros,
        idempotency_key=PACK_HOLD_PREFIX + key,
        currency=catalog.currency,
        metadata={
            "purpose": "session_pack",
            "pack_id": new_id("spk"),
            "product": product,
            "sessions": sessions,
        },
    )
    differ = [
        name
        for name, value in (("product", product), ("sessions", sessions))
        if hold.metadata.get(name) != value
    ]
    if differ:
        raise IdempotencyKeyReused(
            f"idempotency key {key!r} bought another pack", fields=differ, hold_id=hold.id
        )
    await ledger.capture(hold.id, hold.amount, customer_id=customer_id)
    row = SessionPack(
        id=str(hold.metadata["pack_id"]),
        customer_id=customer_id,
        product=product,
        sessions=sessions,
        sessions_left=sessions,
        price_micros=hold.amount,
        currency=catalog.currency,
        hold_id=hold.id,
        idempotency_key=key,
        created_at=clock.now(),
    )
    try:
        async with db.transaction() as session:
            session.add(row)
    except IntegrityError:
        async with db.transaction() as session:
            existing = await _pack_by_key(session, customer_id, key)
        if existing is None:
            raise
        return Bought(PackView.of(existing), replayed=True)
    return Bought(PackView.of(row), replayed=hold.replayed)


async def _pack_by_key(session: AsyncSession, customer_id: str, key: str) -> SessionPack | None:
    return await session.scalar(
        select(SessionPack).where(
            SessionPack.customer_id == customer_id, SessionPack.idempotency_key == key
        )
    )


async def _replayed_pack(
    ledger: Ledger, row: SessionPack, product: str, sessions: int, key: str
) -> Bought:
    differ = [
        name
        for name, same in (
            ("product", row.product == product),
            ("sessions", row.sessions == sessions),
        )
        if not same
    ]
    if differ:
        raise IdempotencyKeyReused(
            f"idempotency key {key!r} bought another pack", fields=differ, pack_id=row.id
        )
    return Bought(PackView.of(row), replayed=True)


async def quota(session: AsyncSession, customer_id: str, *, catalog: Catalog) -> list[Quota]:
    """Prepaid sessions left per product of the catalog (0 when none), in catalog order;
    products no longer in the catalog that still have sessions left come last.

    Raises:
        CustomerNotFound: no such customer.
    """
    await customers.get(session, customer_id)
    rows = await session.execute(
        select(SessionPack.product, func.sum(SessionPack.sessions_left))
        .where(SessionPack.customer_id == customer_id)
        .group_by(SessionPack.product)
    )
    left = {product: int(total or 0) for product, total in rows}
    names = list(catalog.session_products) + sorted(
        p for p in left if p not in catalog.session_products and left[p]
    )
    return [Quota(product=name, sessions_left=left.get(name, 0)) for name in names]
