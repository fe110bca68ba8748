"""Keys and customers on real PostgreSQL: the full key life cycle, and a uniqueness race."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text

from tollhouse.clock import FrozenClock
from tollhouse.customers import CustomerExists
from tollhouse.customers import service as customers
from tollhouse.keys import InvalidKey, KeyAuthenticator, KeyNotRotatable, MalformedKey
from tollhouse.keys import service as keys
from tollhouse.storage import Database

SECRET = b"integration-secret"


async def test_create_authenticate_revoke(postgres_db: Database, clock: FrozenClock) -> None:
    async with postgres_db.transaction() as session:
        customer = await customers.create(session, name="Acme", plan="pro", clock=clock)
        issued = await keys.create_key(
            session,
            customer_id=customer.id,
            name="prod",
            scopes=["read", "write"],
            allowed_models=["gpt-4o"],
            expires_at=clock.now() + timedelta(days=30),
            secret=SECRET,
            clock=clock,
            issuer=None,
        )
    async with postgres_db.sessions() as session:
        rows = (await session.execute(text("SELECT api_keys::text FROM api_keys"))).scalars()
        assert all(issued.secret not in row for row in rows)

    auth = KeyAuthenticator(postgres_db, secret=SECRET, clock=clock)
    principal = await auth.authenticate(issued.secret)
    assert principal.customer_id == customer.id
    assert principal.plan == "pro"
    assert principal.can_use_model("gpt-4o") and not principal.can_use_model("flux")
    principal.require("write")
    with pytest.raises(MalformedKey):
        await auth.authenticate(issued.secret[:-1] + "!")

    clock.advance(5)
    assert await auth.flush_last_used() == 1

    async with postgres_db.transaction() as session:
        await keys.revoke_key(session, issued.key.id, clock=clock, customer_id=customer.id)
    auth.invalidate(issued.key.id)
    with pytest.raises(InvalidKey):
        await auth.authenticate(issued.secret)

    async with postgres_db.sessions() as session:
        stored = await keys.get_key(session, issued.key.id)
    assert stored.last_used_at == clock.now() - timedelta(seconds=5)
    assert stored.revoked_at == clock.now()
    assert stored.expires_at == clock.now() - timedelta(seconds=5) + timedelta(days=30)

    # a fresh process (empty cache) agrees
    fresh = KeyAuthenticator(postgres_db, secret=SECRET, clock=clock)
    with pytest.raises(InvalidKey):
        await fresh.authenticate(issued.secret)
    await auth.stop()


async def test_concurrent_external_id_race_raises_customer_exists(
    postgres_db: Database, clock: FrozenClock
) -> None:
    """B checks before A commits, so B's INSERT waits on the unique index and then fails:
    the savepoint turns that into CustomerExists and leaves B's transaction usable."""

    async def second() -> None:
        async with postgres_db.transaction() as session:
            with pytest.raises(CustomerExists):
                await customers.create(session, name="B", external_id="user-1", clock=clock)
            await customers.create(session, name="B2", external_id="user-2", clock=clock)

    async with postgres_db.sessions() as first, first.begin():
        await customers.create(first, name="A", external_id="user-1", clock=clock)
        racer = asyncio.create_task(second())
        async with postgres_db.sessions() as probe:
            for _ in range(500):
                waiting = await probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
                if waiting:
                    break
                await probe.rollback()  # pg_stat_activity is snapshotted per transaction
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the second insert never waited on the first")
    await racer
    async with postgres_db.sessions() as session:
        names = sorted(c.name for c in await customers.list_customers(session))
    assert names == ["A", "B2"]


async def test_racing_rotations_of_one_key_issue_one_successor(
    postgres_db: Database, clock: FrozenClock
) -> None:
    """B reads the key before A commits its rotation, so B's compare-and-set waits on A's row
    lock; once A commits, B finds the successor and fails with 409, storing nothing."""
    async with postgres_db.transaction() as session:
        customer = await customers.create(session, name="Acme", plan="pro", clock=clock)
        leaked = await keys.create_key(
            session, customer_id=customer.id, name="prod", issuer=None, secret=SECRET, clock=clock
        )

    async def second() -> None:
        async with postgres_db.transaction() as session:
            await keys.rotate_key(session, leaked.key.id, issuer=None, secret=SECRET, clock=clock)

    async with postgres_db.sessions() as first, first.begin():
        won = await keys.rotate_key(first, leaked.key.id, issuer=None, secret=SECRET, clock=clock)
        racer = asyncio.create_task(second())
        async with postgres_db.sessions() as probe:
            for _ in range(500):
                waiting = await probe.scalar(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                )
                if waiting:
                    break
                await probe.rollback()  # pg_stat_activity is snapshotted per transaction
                await asyncio.sleep(0.01)
            else:
                pytest.fail("the second rotation never waited on the first")
    with pytest.raises(KeyNotRotatable) as caught:
        await racer

    assert caught.value.extra["state"] == "rotated"
    async with postgres_db.sessions() as session:
        stored = await keys.list_keys(session, customer_id=customer.id)
    assert sorted(k.id for k in stored) == sorted([leaked.key.id, won.successor.key.id])
    assert [k.successor_id for k in stored if k.id == leaked.key.id] == [won.successor.key.id]
