"""Key rotation on the key service: a successor with the same settings, a grace period for the
old key, once per key.

Story: a customer's key leaks into a log. Its owner rotates it: the successor (a new secret,
every setting of the old key) works at once, the old key keeps working for the grace period
the caller chose (24 h by default, 0 = not at all) and never beyond its own expiry. A key is
rotated once; a revoked or expired key not at all. A customer's key rotates only its own
customer's keys, and only keys within its own bounds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.support.keys import principal_of

from tollhouse.clock import FrozenClock
from tollhouse.customers import Customer
from tollhouse.customers import service as customers
from tollhouse.errors import InvalidInput
from tollhouse.keys import (
    ApiKey,
    InvalidKey,
    IssuedKey,
    KeyAuthenticator,
    KeyExceedsIssuer,
    KeyNotFound,
    KeyNotRotatable,
    Rotation,
    parse_key,
)
from tollhouse.keys import service as keys
from tollhouse.storage import Database

DAY_SECONDS = 86_400


async def issue(db: Database, clock: FrozenClock, secret: bytes, **kwargs: Any) -> IssuedKey:
    kwargs.setdefault("name", "prod")
    async with db.transaction() as session:
        return await keys.create_key(session, issuer=None, secret=secret, clock=clock, **kwargs)


async def rotate(
    db: Database,
    clock: FrozenClock,
    secret: bytes,
    key_id: str,
    *,
    issuer: IssuedKey | None = None,
    **kwargs: Any,
) -> Rotation:
    async with db.transaction() as session:
        return await keys.rotate_key(
            session,
            key_id,
            issuer=None if issuer is None else principal_of(issuer.key),
            secret=secret,
            clock=clock,
            **kwargs,
        )


async def stored(db: Database, key_id: str) -> ApiKey:
    async with db.sessions() as session:
        return await keys.get_key(session, key_id)


@pytest.fixture
async def auth(
    sqlite_db: Database, clock: FrozenClock, secret: bytes
) -> AsyncIterator[KeyAuthenticator]:
    authenticator = KeyAuthenticator(sqlite_db, secret=secret, clock=clock, cache_ttl_seconds=0)
    yield authenticator
    await authenticator.stop()


async def authenticates(auth: KeyAuthenticator, raw: str) -> bool:
    try:
        await auth.authenticate(raw)
    except InvalidKey:
        return False
    return True


@pytest.fixture
async def leaked(
    sqlite_db: Database, clock: FrozenClock, secret: bytes, customer: Customer
) -> IssuedKey:
    """A customer key with every setting given, expiring in 30 days, env `test`."""
    return await issue(
        sqlite_db,
        clock,
        secret,
        customer_id=customer.id,
        scopes=["read", "write"],
        allowed_models=["flux", "gpt-4o"],
        rate_limit_rpm=120,
        expires_at=clock.now() + timedelta(days=30),
        env="test",
    )


class TestSuccessor:
    async def test_successor_has_every_setting_of_the_old_key_and_a_new_secret(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, leaked: IssuedKey
    ) -> None:
        rotation = await rotate(sqlite_db, clock, secret, leaked.key.id)

        new, old = rotation.successor.key, leaked.key
        assert new.id != old.id
        assert rotation.successor.secret != leaked.secret
        assert parse_key(rotation.successor.secret).env == "test"
        assert (new.customer_id, new.name, new.scopes) == (old.customer_id, old.name, old.scopes)
        assert (new.allowed_models, new.rate_limit_rpm) == (["flux", "gpt-4o"], 120)
        assert new.expires_at == old.expires_at
        assert new.created_at == clock.now()

    async def test_old_key_records_its_successor(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, leaked: IssuedKey
    ) -> None:
        rotation = await rotate(sqlite_db, clock, secret, leaked.key.id)

        old = await stored(sqlite_db, leaked.key.id)
        assert old.successor_id == rotation.successor.key.id
        assert (await stored(sqlite_db, rotation.successor.key.id)).successor_id is None

    async def test_successor_can_be_rotated_in_turn(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, leaked: IssuedKey
    ) -> None:
        first = await rotate(sqlite_db, clock, secret, leaked.key.id)

        second = await rotate(sqlite_db, clock, secret, first.successor.key.id)

        assert second.previous.id == first.successor.key.id


class TestGracePeriod:
    async def test_old_key_works_for_24_hours_by_default(
        self,
        sqlite_db: Database,
        clock: FrozenClock,
        secret: bytes,
        customer: Customer,
        auth: KeyAuthenticator,
    ) -> None:
        old = await issue(sqlite_db, clock, secret, customer_id=customer.id)

        rotation = await rotate(sqlite_db, clock, secret, old.key.id)

        assert rotation.previous_expires_at == clock.now() + timedelta(seconds=DAY_SECONDS)
        assert (await stored(sqlite_db, old.key.id)).expires_at == rotation.previous_expires_at
        clock.advance(DAY_SECONDS - 1)
        assert await authenticates(auth, old.secret)
        clock.advance(1)
        assert not await authenticates(auth, old.secret)
        assert await authenticates(auth, rotation.successor.secret)

    async def test_zero_grace_stops_the_old_key_now(
        self,
        sqlite_db: Database,
        clock: FrozenClock,
        secret: bytes,
        leaked: IssuedKey,
        auth: KeyAuthenticator,
    ) -> None:
        rotation = await rotate(sqlite_db, clock, secret, leaked.key.id, grace_seconds=0)

        assert rotation.previous_expires_at == clock.now()
        assert not await authenticates(auth, leaked.secret)
        assert await authenticates(auth, rotation.successor.secret)

    async def test_grace_never_extends_the_old_keys_own_expiry(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, customer: Customer
    ) -> None:
        expires_at = clock.now() + timedelta(hours=1)
        old = await issue(sqlite_db, clock, secret, customer_id=customer.id, expires_at=expires_at)

        rotation = await rotate(sqlite_db, clock, secret, old.key.id, grace_seconds=DAY_SECONDS)

        assert rotation.previous_expires_at == expires_at
        assert rotation.successor.key.expires_at == expires_at

    @pytest.mark.parametrize("grace_seconds", [-1, 30 * DAY_SECONDS + 1])
    async def test_grace_outside_zero_to_thirty_days_is_invalid(
        self,
        sqlite_db: Database,
        clock: FrozenClock,
        secret: bytes,
        leaked: IssuedKey,
        grace_seconds: int,
    ) -> None:
        with pytest.raises(InvalidInput):
            await rotate(sqlite_db, clock, secret, leaked.key.id, grace_seconds=grace_seconds)

        assert (await stored(sqlite_db, leaked.key.id)).successor_id is None


class TestRefusals:
    async def test_rotating_a_rotated_key_is_a_conflict(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, leaked: IssuedKey
    ) -> None:
        first = await rotate(sqlite_db, clock, secret, leaked.key.id)

        with pytest.raises(KeyNotRotatable) as caught:
            await rotate(sqlite_db, clock, secret, leaked.key.id)

        assert (caught.value.status, caught.value.code) == (409, "key-not-rotatable")
        assert caught.value.extra == {"key_id": leaked.key.id, "state": "rotated"}
        assert (await stored(sqlite_db, leaked.key.id)).successor_id == first.successor.key.id
        assert await key_count(sqlite_db) == 2

    async def test_rotating_a_revoked_key_is_a_conflict(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, leaked: IssuedKey
    ) -> None:
        async with sqlite_db.transaction() as session:
            await keys.revoke_key(session, leaked.key.id, clock=clock)

        with pytest.raises(KeyNotRotatable) as caught:
            await rotate(sqlite_db, clock, secret, leaked.key.id)

        assert caught.value.extra["state"] == "revoked"
        assert await key_count(sqlite_db) == 1

    async def test_rotating_an_expired_key_is_a_conflict(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, leaked: IssuedKey
    ) -> None:
        clock.advance(31 * DAY_SECONDS)

        with pytest.raises(KeyNotRotatable) as caught:
            await rotate(sqlite_db, clock, secret, leaked.key.id)

        assert caught.value.extra["state"] == "expired"

    async def test_customer_key_cannot_rotate_another_customers_key(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, leaked: IssuedKey
    ) -> None:
        async with sqlite_db.transaction() as session:
            other = await customers.create(session, name="Other", plan="pro", clock=clock)
        stranger = await issue(sqlite_db, clock, secret, customer_id=other.id, scopes=["admin"])

        with pytest.raises(KeyNotFound):
            await rotate(sqlite_db, clock, secret, leaked.key.id, issuer=stranger)

        assert (await stored(sqlite_db, leaked.key.id)).successor_id is None

    async def test_customer_key_cannot_rotate_a_key_wider_than_itself(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, customer: Customer
    ) -> None:
        wide = await issue(sqlite_db, clock, secret, customer_id=customer.id)
        narrow = await issue(
            sqlite_db,
            clock,
            secret,
            customer_id=customer.id,
            scopes=["admin"],
            allowed_models=["flux"],
        )

        with pytest.raises(KeyExceedsIssuer) as caught:
            await rotate(sqlite_db, clock, secret, wide.key.id, issuer=narrow)

        assert caught.value.extra["fields"] == ["allowed_models"]
        assert (await stored(sqlite_db, wide.key.id)).successor_id is None
        assert await key_count(sqlite_db) == 2

    async def test_customer_admin_key_rotates_itself(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, customer: Customer
    ) -> None:
        own = await issue(sqlite_db, clock, secret, customer_id=customer.id, scopes=["admin"])

        rotation = await rotate(sqlite_db, clock, secret, own.key.id, issuer=own)

        assert rotation.successor.key.scopes == ["admin"]
        assert rotation.previous.successor_id == rotation.successor.key.id

    async def test_operator_key_rotates_a_customers_key(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, leaked: IssuedKey
    ) -> None:
        operator = await issue(sqlite_db, clock, secret, customer_id=None, scopes=["admin"])

        rotation = await rotate(sqlite_db, clock, secret, leaked.key.id, issuer=operator)

        assert rotation.successor.key.customer_id == leaked.key.customer_id


async def key_count(db: Database) -> int:
    """Every key stored (a refused rotation stores no successor)."""
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(ApiKey)) or 0)
