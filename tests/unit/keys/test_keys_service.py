"""Key service: issue (secret shown once), read, list, revoke."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from tollhouse.clock import FrozenClock
from tollhouse.customers import Customer, CustomerNotFound
from tollhouse.errors import InvalidInput
from tollhouse.keys import (
    ApiKey,
    InvalidScope,
    KeyExists,
    KeyNotFound,
    MalformedKey,
    digest,
    generate_key,
    parse_key,
)
from tollhouse.keys import service as keys
from tollhouse.storage import Database


class TestCreateKey:
    async def test_secret_is_returned_once_and_only_its_digest_is_stored(
        self, sqlite_db: Database, clock: FrozenClock, customer: Customer, secret: bytes
    ) -> None:
        async with sqlite_db.transaction() as session:
            issued = await keys.create_key(
                session,
                customer_id=customer.id,
                name="prod",
                secret=secret,
                clock=clock,
                issuer=None,
            )
        raw = issued.secret
        parsed = parse_key(raw)
        async with sqlite_db.sessions() as session:
            stored = await keys.get_key(session, issued.key.id)
            assert stored.digest == digest(raw, secret)
            assert stored.prefix == parsed.prefix == raw[: len("th_live_") + 8]
            values = (await session.execute(select(ApiKey.__table__))).one()
        assert all(raw not in str(value) for value in values)
        assert all(parsed.body not in str(value) for value in values)

    async def test_raw_key_appears_nowhere_in_the_database_files(
        self, sqlite_db: Database, clock: FrozenClock, customer: Customer, secret: bytes
    ) -> None:
        async with sqlite_db.transaction() as session:
            issued = await keys.create_key(
                session,
                customer_id=customer.id,
                name="prod",
                secret=secret,
                clock=clock,
                issuer=None,
            )
        await sqlite_db.dispose()
        database = Path(str(make_url(sqlite_db.url).database))
        contents = b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*"))
        hidden = issued.secret[len(issued.key.prefix) :]  # everything past the visible prefix
        assert issued.key.digest.encode() in contents  # the row did reach the disk
        assert issued.secret.encode() not in contents
        assert hidden.encode() not in contents

    async def test_reprs_hide_the_secret_and_digest(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        async with sqlite_db.transaction() as session:
            issued = await keys.create_key(
                session,
                customer_id=None,
                name="ops",
                secret=secret,
                clock=clock,
                issuer=None,
            )
        assert issued.secret not in repr(issued)
        assert issued.key.digest not in repr(issued)
        assert issued.key.digest not in repr(issued.key)
        assert issued.key.prefix in repr(issued)

    async def test_defaults_and_normalisation(
        self, sqlite_db: Database, clock: FrozenClock, customer: Customer, secret: bytes
    ) -> None:
        async with sqlite_db.transaction() as session:
            issued = await keys.create_key(
                session,
                customer_id=customer.id,
                name="  ci  ",
                scopes=["write", "read", "write"],
                allowed_models=["gpt-4o", "flux", "gpt-4o"],
                rate_limit_rpm=60,
                env="test",
                secret=secret,
                clock=clock,
                issuer=None,
            )
        key = issued.key
        assert key.id.startswith("key_")
        assert key.name == "ci"
        assert key.scopes == ["read", "write"]
        assert key.allowed_models == ["flux", "gpt-4o"]
        assert key.rate_limit_rpm == 60
        assert key.created_at == clock.now()
        assert key.prefix.startswith("th_test_")
        assert issued.secret.startswith("th_test_")
        assert (key.expires_at, key.revoked_at, key.last_used_at) == (None, None, None)

    @pytest.mark.parametrize("scopes", [[], ["read", "root"], ["READ"]])
    async def test_unknown_or_no_scope_raises(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, scopes: list[str]
    ) -> None:
        async with sqlite_db.transaction() as session:
            with pytest.raises(InvalidScope) as caught:
                await keys.create_key(
                    session,
                    customer_id=None,
                    name="x",
                    scopes=scopes,
                    secret=secret,
                    clock=clock,
                    issuer=None,
                )
        assert caught.value.status == 422
        assert caught.value.code == "invalid-scope"

    async def test_unknown_customer_raises(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        async with sqlite_db.transaction() as session:
            with pytest.raises(CustomerNotFound):
                await keys.create_key(
                    session,
                    customer_id="cus_nope",
                    name="x",
                    secret=secret,
                    clock=clock,
                    issuer=None,
                )

    @pytest.mark.parametrize(
        ("field", "value"),
        [("name", ""), ("rate_limit_rpm", 0), ("expires_at", "past"), ("env", "Prod")],
    )
    async def test_invalid_input_raises(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, field: str, value: object
    ) -> None:
        kwargs: dict[str, object] = {"name": "x", field: value}
        if value == "past":
            kwargs["expires_at"] = clock.now()
        async with sqlite_db.transaction() as session:
            with pytest.raises(InvalidInput):
                await keys.create_key(
                    session,
                    customer_id=None,
                    issuer=None,
                    secret=secret,
                    clock=clock,
                    **kwargs,  # type: ignore[arg-type]
                )

    async def test_given_raw_key_is_installed(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        raw = generate_key("boot")
        async with sqlite_db.transaction() as session:
            issued = await keys.create_key(
                session,
                customer_id=None,
                name="bootstrap",
                secret=secret,
                clock=clock,
                raw_key=raw,
                issuer=None,
            )
        assert issued.secret == raw
        assert issued.key.digest == digest(raw, secret)
        assert issued.key.prefix.startswith("th_boot_")

    async def test_installing_the_same_raw_key_twice_raises(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        raw = generate_key()
        async with sqlite_db.transaction() as session:
            await keys.create_key(
                session,
                customer_id=None,
                name="a",
                secret=secret,
                clock=clock,
                raw_key=raw,
                issuer=None,
            )
            with pytest.raises(KeyExists):
                await keys.create_key(
                    session,
                    customer_id=None,
                    name="b",
                    secret=secret,
                    clock=clock,
                    raw_key=raw,
                    issuer=None,
                )

    async def test_malformed_raw_key_raises(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        async with sqlite_db.transaction() as session:
            with pytest.raises(MalformedKey):
                await keys.create_key(
                    session,
                    customer_id=None,
                    name="a",
                    secret=secret,
                    clock=clock,
                    raw_key="x",
                    issuer=None,
                )


class TestRevokeAndList:
    async def test_revoke_sets_revoked_at_once(
        self, sqlite_db: Database, clock: FrozenClock, customer: Customer, secret: bytes
    ) -> None:
        async with sqlite_db.transaction() as session:
            issued = await keys.create_key(
                session,
                customer_id=customer.id,
                name="a",
                secret=secret,
                clock=clock,
                issuer=None,
            )
        revoked_at = clock.now()
        async with sqlite_db.transaction() as session:
            key = await keys.revoke_key(session, issued.key.id, clock=clock)
        assert key.revoked_at == revoked_at
        clock.advance(60)
        async with sqlite_db.transaction() as session:
            again = await keys.revoke_key(session, issued.key.id, clock=clock)
        assert again.revoked_at == revoked_at

    async def test_revoking_another_customers_key_raises_not_found(
        self, sqlite_db: Database, clock: FrozenClock, customer: Customer, secret: bytes
    ) -> None:
        async with sqlite_db.transaction() as session:
            issued = await keys.create_key(
                session,
                customer_id=customer.id,
                name="a",
                secret=secret,
                clock=clock,
                issuer=None,
            )
            with pytest.raises(KeyNotFound) as caught:
                await keys.revoke_key(session, issued.key.id, clock=clock, customer_id="cus_x")
            assert caught.value.status == 404
            assert caught.value.code == "key-not-found"
            with pytest.raises(KeyNotFound):
                await keys.revoke_key(session, "key_missing", clock=clock)
            assert issued.key.revoked_at is None

    async def test_list_keys_by_customer_or_all(
        self, sqlite_db: Database, clock: FrozenClock, customer: Customer, secret: bytes
    ) -> None:
        async with sqlite_db.transaction() as session:
            first = await keys.create_key(
                session,
                customer_id=customer.id,
                name="a",
                secret=secret,
                clock=clock,
                issuer=None,
            )
            clock.advance(1)
            second = await keys.create_key(
                session,
                customer_id=customer.id,
                name="b",
                secret=secret,
                clock=clock,
                issuer=None,
            )
            operator = await keys.create_key(
                session,
                customer_id=None,
                name="ops",
                secret=secret,
                clock=clock,
                issuer=None,
            )
            await keys.revoke_key(session, first.key.id, clock=clock)
        async with sqlite_db.sessions() as session:
            mine = await keys.list_keys(session, customer_id=customer.id)
            active = await keys.list_keys(session, customer_id=customer.id, include_revoked=False)
            every = await keys.list_keys(session, customer_id=None)
        assert [k.id for k in mine] == [first.key.id, second.key.id]
        assert [k.id for k in active] == [second.key.id]
        assert {k.id for k in every} == {first.key.id, second.key.id, operator.key.id}

    async def test_has_operator_key_counts_only_usable_operator_keys(
        self, sqlite_db: Database, clock: FrozenClock, customer: Customer, secret: bytes
    ) -> None:
        async with sqlite_db.transaction() as session:
            assert not await keys.has_operator_key(session)
            await keys.create_key(
                session,
                customer_id=customer.id,
                name="c",
                secret=secret,
                clock=clock,
                issuer=None,
            )
            assert not await keys.has_operator_key(session)
            ops = await keys.create_key(
                session,
                customer_id=None,
                name="ops",
                scopes=["admin"],
                expires_at=clock.now() + timedelta(hours=1),
                secret=secret,
                clock=clock,
                issuer=None,
            )
            assert await keys.has_operator_key(session)
            clock.advance(3600)
            assert await keys.has_operator_key(session)
            assert not await keys.has_operator_key(session, clock=clock)
            await keys.revoke_key(session, ops.key.id, clock=clock)
            assert not await keys.has_operator_key(session)
