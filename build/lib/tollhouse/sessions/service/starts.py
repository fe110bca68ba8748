"""Start a flat session: from a prepaid pack first, else from the wallet.

See `tollhouse.sessions.service` for the order of the writes and the bound on unpaid use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Catalog, SessionProduct
from tollhouse.clock import Clock
from tollhouse.customers import service as customers
from tollhouse.errors import IdempotencyKeyReused
from tollhouse.events import service as events
from tollhouse.ids import new_id
from tollhouse.ledger import HoldView, Ledger
from tollhouse.ledger import service as ledger_reads
from tollhouse.sessions.errors import SessionActive
from tollhouse.sessions.models import PaidWith, Session, SessionKind, SessionPack, SessionStatus
from tollhouse.sessions.schemas import SessionView, Started
from tollhouse.sessions.service.lifecycle import (
    active_session,
    by_key,
    check_key,
    end_finished,
    require_none_active,
    same_start,
    views,
)
from tollhouse.storage import Database

SESSION_HOLD_PREFIX = "session:"
"""A session fee's hold key: this prefix and the start's idempotency key."""


class _LostRace(Exception):
    """The session row lost a unique constraint: roll back, then find out which one."""


async def _take_from_pack(
    session: AsyncSession, customer_id: str, product: str
) -> SessionPack | None:
    """Take one session from the customer's oldest pack of `product` with some left, or None.
    The decrement is conditional (`sessions_left > 0`), so concurrent starts never overdraw."""
    packs = await session.scalars(
        select(SessionPack)
        .where(
            SessionPack.customer_id == customer_id,
            SessionPack.product == product,
            SessionPack.sessions_left > 0,
        )
        .order_by(SessionPack.created_at, SessionPack.id)
    )
    for pack in list(packs):
        taken = await session.execute(
            update(SessionPack)
            .where(SessionPack.id == pack.id, SessionPack.sessions_left > 0)
            .values(sessions_left=SessionPack.sessions_left - 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(taken, "rowcount", 0) == 1:
            await session.refresh(pack)
            return pack
    return None


@dataclass(frozen=True, slots=True)
class _Payment:
    paid_with: PaidWith
    fee_micros: int
    pack_id: str | None = None
    hold_id: str | None = None


async def _insert(
    session: AsyncSession,
    *,
    session_id: str,
    customer_id: str,
    offer: SessionProduct,
    currency: str,
    clock: Clock,
    payment: _Payment,
    idempotency_key: str,
    auto_renew: bool,
) -> Session:
    """Write the new session and its `session.started` event.

    Raises:
        _LostRace: a concurrent start took the key or the product's active slot.
    """
    now = clock.now()
    row = Session(
        id=session_id,
        customer_id=customer_id,
        kind=SessionKind.FLAT,
        product=offer.name,
        status=SessionStatus.ACTIVE,
        active_product=offer.name,
        started_at=now,
        expires_at=now + timedelta(seconds=offer.duration_seconds),
        token_cap=offer.max_tokens,
        tokens_used=0,
        fee_micros=payment.fee_micros,
        currency=currency,
        paid_with=payment.paid_with,
        pack_id=payment.pack_id,
        hold_id=payment.hold_id,
        idempotency_key=idempotency_key,
        auto_renew=auto_renew,
    )
    try:
        async with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise _LostRace from exc
    await events.emit(
        session,
        customer_id=customer_id,
        type="session.started",
        data={
            "session_id": row.id,
            "product": row.product,
            "kind": row.kind,
            "fee_micros": row.fee_micros,
            "paid_with": row.paid_with,
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
            "token_cap": row.token_cap,
            "auto_renew": row.auto_renew,
        },
        clock=clock,
    )
    return row


async def start(
    db: Database,
    ledger: Ledger,
    *,
    catalog: Catalog,
    clock: Clock,
    customer_id: str,
    product: str,
    idempotency_key: str,
    auto_renew: bool = False,
) -> Started:
    """Start a flat session of `product` for the customer, paid from its oldest pack of the
    product with sessions left, else from the wallet at the product's price.

    A pack's session costs the pack's price divided by its sessions, rounded down to a micro.
    `auto_renew`: when a cap ends the session, the next call it would have covered starts a
    new one (see `gateway.session_guard`).

    Raises:
        InvalidInput: empty or oversized idempotency key.
        CustomerNotFound: no such customer.
        SessionProductNotFound: no such product in the catalog.
        SessionActive: the customer has an active session of the product.
        InsufficientCredit: no pack, and the wallet cannot cover the price (nothing stored).
        IdempotencyKeyReused: the key started a session of another product.
    """
    key = check_key(idempotency_key)
    offer = catalog.session_product(product)
    hold_key = SESSION_HOLD_PREFIX + key
    try:
        async with db.transaction() as session:
            await customers.get(session, customer_id)
            now = clock.now()
            await end_finished(session, customer_id, clock=clock)
            existing = await by_key(session, customer_id, key)
            if existing is not None:
                same_start(existing, product, key)
                return Started((await views(session, [existing], now))[0], replayed=True)
            await require_none_active(session, customer_id, product)
            earlier = await ledger_reads.find_hold(session, customer_id, hold_key)
            pack = (
                None
                if earlier is not None
                else await _take_from_pack(session, customer_id, product)
            )
            if pack is not None:
                payment = _Payment(PaidWith.PACK, pack.price_micros // pack.sessions, pack.id)
                row = await _insert(
                    session,
                    session_id=new_id("ses"),
                    customer_id=customer_id,
                    offer=offer,
                    currency=catalog.currency,
                    clock=clock,
                    payment=payment,
                    idempotency_key=key,
                    auto_renew=auto_renew,
                )
                return Started(SessionView.of(row, now), replayed=False)
    except _LostRace:
        return await _after_lost_race(db, clock, customer_id, product, key)
    return await _start_from_wallet(
        db, ledger, offer, catalog, clock, customer_id, key, auto_renew=auto_renew
    )


async def _start_from_wallet(
    db: Database,
    ledger: Ledger,
    offer: SessionProduct,
    catalog: Catalog,
    clock: Clock,
    customer_id: str,
    key: str,
    *,
    auto_renew: bool,
) -> Started:
    """Hold the price, commit the session, capture the hold (see the module's docstring)."""
    hold = await ledger.hold(
        customer_id,
        offer.price_micros,
        idempotency_key=SESSION_HOLD_PREFIX + key,
        currency=catalog.currency,
        expires_at=clock.now() + timedelta(seconds=offer.duration_seconds),
        metadata={"purpose": "session_fee", "session_id": new_id("ses"), "product": offer.name},
    )
    if hold.metadata.get("product") != offer.name:
        raise IdempotencyKeyReused(
            f"idempotency key {key!r} started a session of another product",
            fields=["product"],
            hold_id=hold.id,
        )
    try:
        async with db.transaction() as session:
            now = clock.now()
            existing = await by_key(session, customer_id, key)
            if existing is not None:
                replay: Started | None = Started(
                    (await views(session, [existing], now))[0], replayed=True
                )
            else:
                replay = None
                payment = _Payment(PaidWith.WALLET, hold.amount, hold_id=hold.id)
                row = await _insert(
                    session,
                    session_id=str(hold.metadata["session_id"]),
                    customer_id=customer_id,
                    offer=offer,
                    currency=catalog.currency,
                    clock=clock,
                    payment=payment,
                    idempotency_key=key,
                    auto_renew=auto_renew,
                )
    except _LostRace:
        try:
            started = await _after_lost_race(db, clock, customer_id, offer.name, key)
        except (SessionActive, IdempotencyKeyReused):
            if hold.status == "open":
                await ledger.void(hold.id, customer_id=customer_id)
            raise
        await _settle(ledger, hold, started)
        return started
    if replay is not None:
        await _settle(ledger, hold, replay)
        if replay.session.product != offer.name:
            raise IdempotencyKeyReused(
                f"idempotency key {key!r} started a session of another product",
                fields=["product"],
                session_id=replay.session.id,
            )
        return replay
    await ledger.capture(hold.id, hold.amount, customer_id=customer_id)
    return Started(SessionView.of(row, now), replayed=hold.replayed)


async def _settle(ledger: Ledger, hold: HoldView, started: Started) -> None:
    """Capture the hold when a session was started with it (a replay after a crash), else
    release it."""
    if started.session.hold_id == hold.id:
        await ledger.capture(hold.id, hold.amount, customer_id=hold.customer_id)
    elif hold.status == "open":
        await ledger.void(hold.id, customer_id=hold.customer_id)


async def _after_lost_race(
    db: Database,
    clock: Clock,
    customer_id: str,
    product: str,
    key: str,
) -> Started:
    """A concurrent start won: with the same key (answer its session) or with another key
    for the same product (`SessionActive`)."""
    async with db.transaction() as session:
        existing = await by_key(session, customer_id, key)
        if existing is not None:
            same_start(existing, product, key)
            return Started((await views(session, [existing], clock.now()))[0], replayed=True)
        current = await active_session(session, customer_id, product)
    raise SessionActive(
        f"a session of {product!r} is active until it ends or is terminated",
        product=product,
        session_id=current.id if current is not None else None,
    )
