"""Flat sessions through the service, on SQLite and PostgreSQL, with a frozen clock."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest

from tollhouse.catalog import Catalog, SessionProductNotFound
from tollhouse.clock import FrozenClock
from tollhouse.errors import IdempotencyKeyReused, InvalidInput
from tollhouse.events import service as events
from tollhouse.ledger import InsufficientCredit, Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.sessions import SessionActive, SessionNotFound
from tollhouse.sessions import service as sessions
from tollhouse.storage import Database

NewCustomer = Callable[[], Awaitable[str]]
Balance = Callable[[str], Awaitable[int]]
WALLET_MICROS = 10_000_000
"""What `new_customer` grants (conftest)."""
DAY_MICROS = 1_000_000
PACK_5_MICROS = 4_500_000


async def test_a_pack_is_spent_before_the_wallet(
    db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock,
    new_customer: NewCustomer, balance: Balance,
) -> None:  # fmt: skip
    customer = await new_customer()
    bought = await sessions.buy_pack(
        db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="day",
        sessions=5, idempotency_key="pack-1",
    )  # fmt: skip
    assert (bought.pack.sessions_left, bought.pack.price_micros) == (5, PACK_5_MICROS)
    assert await balance(customer) == WALLET_MICROS - PACK_5_MICROS

    started = await sessions.start(
        db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="day",
        idempotency_key="s-1",
    )  # fmt: skip
    view = started.session
    assert (view.paid_with, view.pack_id, view.hold_id) == ("pack", bought.pack.id, None)
    assert view.fee_micros == PACK_5_MICROS // 5
    assert await balance(customer) == WALLET_MICROS - PACK_5_MICROS
    async with db.transaction() as session:
        left = await sessions.quota(session, customer, catalog=catalog)
    assert [(q.product, q.sessions_left) for q in left] == [("day", 4), ("hour", 0)]


async def test_without_a_pack_the_wallet_pays_and_the_history_shows_the_fee(
    db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock,
    new_customer: NewCustomer, balance: Balance,
) -> None:  # fmt: skip
    customer = await new_customer()
    started = await sessions.start(
        db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="day",
        idempotency_key="s-1",
    )  # fmt: skip
    view = started.session
    assert (view.paid_with, view.fee_micros, view.status) == ("wallet", DAY_MICROS, "active")
    assert (view.tokens_left, view.seconds_left) == (1000, 86400)
    assert view.expires_at == clock.now() + timedelta(days=1)
    assert await balance(customer) == WALLET_MICROS - DAY_MICROS
    async with db.transaction() as session:
        hold = await ledger_service.get_hold(session, view.hold_id or "")
        history = await ledger_service.transactions(session, customer)
    assert (hold.status, hold.captured_amount) == ("captured", DAY_MICROS)
    assert hold.metadata["session_id"] == view.id and hold.metadata["product"] == "day"
    fee = [e for e in history if e.hold_id == view.hold_id and e.kind == "capture"]
    assert sum(e.amount for e in fee) == -DAY_MICROS


async def test_a_replayed_start_answers_the_same_session_and_charges_once(
    db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock,
    new_customer: NewCustomer, balance: Balance,
) -> None:  # fmt: skip
    customer = await new_customer()
    first = await sessions.start(
        db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="day",
        idempotency_key="s-1",
    )  # fmt: skip
    clock.advance(60)
    again = await sessions.start(
        db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="day",
        idempotency_key="s-1",
    )  # fmt: skip
    assert (first.replayed, again.replayed) == (False, True)
    assert again.session.id == first.session.id
    assert await balance(customer) == WALLET_MICROS - DAY_MICROS
    with pytest.raises(IdempotencyKeyReused) as reused:
        await sessions.start(
            db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="hour",
            idempotency_key="s-1",
        )  # fmt: skip
    assert reused.value.extra["fields"] == ["product"]
    assert await balance(customer) == WALLET_MICROS - DAY_MICROS


async def test_a_replayed_pack_purchase_charges_once(
    db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock,
    new_customer: NewCustomer, balance: Balance,
) -> None:  # fmt: skip
    customer = await new_customer()
    buy = dict(catalog=catalog, clock=clock, customer_id=customer, product="day")
    first = await sessions.buy_pack(db, ledger, **buy, sessions=5, idempotency_key="p")  # type: ignore[arg-type]
    again = await sessions.buy_pack(db, ledger, **buy, sessions=5, idempotency_key="p")  # type: ignore[arg-type]
    assert (first.replayed, again.replayed, again.pack.id) == (False, True, first.pack.id)
    assert await balance(customer) == WALLET_MICROS - PACK_5_MICROS
    with pytest.raises(IdempotencyKeyReused):
        await sessions.buy_pack(db, ledger, **buy, sessions=20, idempotency_key="p")  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="no pack of 3"):
        await sessions.buy_pack(db, ledger, **buy, sessions=3, idempotency_key="q")  # type: ignore[arg-type]
    assert await balance(customer) == WALLET_MICROS - PACK_5_MICROS


async def test_the_duration_cap_ends_the_session_at_its_expiry(
    db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
) -> None:
    customer = await new_customer()
    started = await sessions.start(
        db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="hour",
        idempotency_key="s-1",
    )  # fmt: skip
    clock.advance(3599)
    async with db.transaction() as session:
        view = await sessions.get(session, started.session.id, clock=clock)
    assert (view.status, view.seconds_left, view.tokens_left) == ("active", 1, None)
    clock.advance(1)
    async with db.transaction() as session:
        view = await sessions.get(session, started.session.id, clock=clock)
    assert (view.status, view.end_reason, view.seconds_left) == ("ended", "duration", 0)
    assert view.ended_at == started.session.expires_at
    renewed = await sessions.start(
        db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="hour",
        idempotency_key="s-2",
    )  # fmt: skip
    assert renewed.session.id != started.session.id
    async with db.transaction() as session:
        page = await events.list_events(session, customer_id=customer)
    facts = [(e.type, e.data.get("reason")) for e in page.events]
    assert facts == [
        ("session.started", None),
        ("session.ended", "duration"),
        ("session.started", None),
    ]


async def test_one_active_session_per_product(
    db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock,
    new_customer: NewCustomer, balance: Balance,
) -> None:  # fmt: skip
    customer = await new_customer()
    start = dict(catalog=catalog, clock=clock, customer_id=customer)
    first = await sessions.start(db, ledger, **start, product="day", idempotency_key="a")  # type: ignore[arg-type]
    with pytest.raises(SessionActive) as active:
        await sessions.start(db, ledger, **start, product="day", idempotency_key="b")  # type: ignore[arg-type]
    assert active.value.extra["session_id"] == first.session.id
    other = await sessions.start(db, ledger, **start, product="hour", idempotency_key="c")  # type: ignore[arg-type]
    assert other.session.product == "hour"
    assert await balance(customer) == WALLET_MICROS - DAY_MICROS - 250_000
    async with db.transaction() as session:
        ended = await sessions.terminate(session, first.session.id, clock=clock)
    assert (ended.status, ended.end_reason) == ("ended", "terminated")
    again = await sessions.start(db, ledger, **start, product="day", idempotency_key="b")  # type: ignore[arg-type]
    assert again.session.status == "active"


async def test_another_customers_session_is_not_found(
    db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock, new_customer: NewCustomer
) -> None:
    owner, other = await new_customer(), await new_customer()
    started = await sessions.start(
        db, ledger, catalog=catalog, clock=clock, customer_id=owner, product="day",
        idempotency_key="s-1",
    )  # fmt: skip
    async with db.transaction() as session:
        with pytest.raises(SessionNotFound):
            await sessions.get(session, started.session.id, clock=clock, customer_id=other)
        with pytest.raises(SessionNotFound):
            await sessions.terminate(session, started.session.id, clock=clock, customer_id=other)
        assert await sessions.list_sessions(session, clock=clock, customer_id=other) == []
        view = await sessions.get(session, started.session.id, clock=clock, customer_id=owner)
    assert view.status == "active"


async def test_a_wallet_that_cannot_pay_starts_nothing(
    db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock,
    new_customer: NewCustomer, balance: Balance,
) -> None:  # fmt: skip
    customer = await new_customer()
    await sessions.buy_pack(
        db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="day",
        sessions=5, idempotency_key="p",
    )  # fmt: skip
    with pytest.raises(InsufficientCredit):
        await sessions.buy_pack(
            db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="day",
            sessions=20, idempotency_key="q",
        )  # fmt: skip
    with pytest.raises(SessionProductNotFound):
        await sessions.start(
            db, ledger, catalog=catalog, clock=clock, customer_id=customer, product="week",
            idempotency_key="s",
        )  # fmt: skip
    async with db.transaction() as session:
        assert await sessions.list_sessions(session, clock=clock, customer_id=customer) == []
    assert await balance(customer) == WALLET_MICROS - PACK_5_MICROS


async def test_concurrent_starts_make_one_session_and_charge_once(
    db: Database, ledger: Ledger, catalog: Catalog, clock: FrozenClock,
    new_customer: NewCustomer, balance: Balance,
) -> None:  # fmt: skip
    customer = await new_customer()
    start = dict(catalog=catalog, clock=clock, customer_id=customer, product="day")

    async def attempt(key: str) -> str:
        try:
            started = await sessions.start(db, ledger, **start, idempotency_key=key)  # type: ignore[arg-type]
        except SessionActive:
            return "active"
        return started.session.id

    outcomes = await asyncio.gather(*(attempt(key) for key in ("k", "k", "k", "j", "j")))
    ids = {outcome for outcome in outcomes if outcome != "active"}
    assert len(ids) == 1
    async with db.transaction() as session:
        listed = await sessions.list_sessions(session, clock=clock, customer_id=customer)
    assert [view.id for view in listed] == list(ids)
    assert await balance(customer) == WALLET_MICROS - DAY_MICROS
