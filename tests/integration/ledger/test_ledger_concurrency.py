"""Concurrent holds against one wallet on PostgreSQL: exactly the balance is granted."""

from __future__ import annotations

import asyncio

from tollhouse.clock import FrozenClock
from tollhouse.ledger import InsufficientCredit, Ledger
from tollhouse.ledger import service as ledger_service
from tollhouse.storage import Database

BALANCE_MICROS = 100
ATTEMPTS = 200


async def invariants(db: Database) -> list[str]:
    async with db.sessions() as session:
        return await ledger_service.check_invariants(session)


async def test_200_concurrent_holds_of_1_against_100_exactly_100_succeed(
    postgres_db: Database, clock: FrozenClock
) -> None:
    async with Ledger(postgres_db, clock=clock) as ledger:
        await ledger.grant("cus_a", BALANCE_MICROS, idempotency_key="g")

        results = await asyncio.gather(
            *(ledger.hold("cus_a", 1) for _ in range(ATTEMPTS)), return_exceptions=True
        )

    held = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, InsufficientCredit)]
    assert (len(held), len(refused)) == (BALANCE_MICROS, ATTEMPTS - BALANCE_MICROS)
    assert await invariants(postgres_db) == []


async def test_two_writers_with_separate_engines_share_one_wallet_exactly(
    postgres_db: Database, clock: FrozenClock
) -> None:
    other_db = Database(postgres_db.url)
    try:
        async with Ledger(postgres_db, clock=clock) as one, Ledger(other_db, clock=clock) as two:
            await one.grant("cus_a", BALANCE_MICROS, idempotency_key="g")
            calls = [(one if n % 2 else two).hold("cus_a", 1) for n in range(ATTEMPTS)]
            results = await asyncio.gather(*calls, return_exceptions=True)
            held = [r for r in results if not isinstance(r, BaseException)]
            captures = [(one if n % 2 else two).capture(h.id, 1) for n, h in enumerate(held)]
            await asyncio.gather(*captures)
    finally:
        await other_db.dispose()

    assert len(held) == BALANCE_MICROS
    assert all(isinstance(r, InsufficientCredit) for r in results if isinstance(r, Exception))
    async with postgres_db.sessions() as session:
        wallet = await ledger_service.balance(session, "cus_a", now=clock.now())
    assert (wallet.available_micros, wallet.held_micros) == (0, 0)
    assert await invariants(postgres_db) == []


async def test_two_writers_racing_on_one_grant_key_credit_once(
    postgres_db: Database, clock: FrozenClock
) -> None:
    other_db = Database(postgres_db.url)
    try:
        async with Ledger(postgres_db, clock=clock) as one, Ledger(other_db, clock=clock) as two:
            grants = await asyncio.gather(
                *(
                    writer.grant(f"cus_{n}", 10, idempotency_key="same")
                    for n in range(20)
                    for writer in (one, two)
                )
            )
    finally:
        await other_db.dispose()

    by_customer: dict[str, set[str]] = {}
    for grant in grants:
        by_customer.setdefault(grant.customer_id, set()).add(grant.id)
    assert all(len(ids) == 1 for ids in by_customer.values())
    async with postgres_db.sessions() as session:
        for n in range(20):
            wallet = await ledger_service.balance(session, f"cus_{n}", now=clock.now())
            assert wallet.available_micros == 10
    assert await invariants(postgres_db) == []
