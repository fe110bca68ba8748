"""The mint rule on the key service: a key can mint only what it has.

Story: a customer's `admin` key, restricted to one model, 60 requests a minute and a week of
life, issues keys. It may issue narrower keys, and keys that omit a bound inherit its own;
wider ones are refused (403 `key-exceeds-issuer`, naming each field) and nothing is stored.
Operator keys mint for any customer within their own bounds; only they mint operator keys;
the trusted context (no issuer: the CLI, bootstrap) is not bounded.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from tests.support.keys import principal_of

from tollhouse.clock import FrozenClock
from tollhouse.customers import Customer, CustomerNotFound
from tollhouse.customers import service as customers
from tollhouse.keys import ApiKey, InvalidKey, IssuedKey, KeyExceedsIssuer
from tollhouse.keys import service as keys
from tollhouse.storage import Database

ISSUER_RPM = 60
ISSUER_MODEL = "flux"
ISSUER_LIFETIME = timedelta(days=7)


async def trusted(db: Database, clock: FrozenClock, secret: bytes, **kwargs: Any) -> IssuedKey:
    """A key issued in the trusted context (no issuer)."""
    kwargs.setdefault("name", "issuer")
    async with db.transaction() as session:
        return await keys.create_key(session, issuer=None, secret=secret, clock=clock, **kwargs)


async def mint(
    db: Database, clock: FrozenClock, secret: bytes, issuer: IssuedKey, **kwargs: Any
) -> ApiKey:
    """A key issued by `issuer` (for its customer unless `customer_id` is given)."""
    kwargs.setdefault("customer_id", issuer.key.customer_id)
    async with db.transaction() as session:
        issued = await keys.create_key(
            session,
            name="minted",
            issuer=principal_of(issuer.key),
            secret=secret,
            clock=clock,
            **kwargs,
        )
    return issued.key


async def refused(
    db: Database, clock: FrozenClock, secret: bytes, issuer: IssuedKey, **kwargs: Any
) -> KeyExceedsIssuer:
    """Mint, expecting the mint rule's refusal; checks that no key was stored."""
    before = await key_count(db)
    with pytest.raises(KeyExceedsIssuer) as caught:
        await mint(db, clock, secret, issuer, **kwargs)
    assert await key_count(db) == before
    return caught.value


async def key_count(db: Database) -> int:
    async with db.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(ApiKey)) or 0)


@pytest.fixture
async def restricted(
    sqlite_db: Database, clock: FrozenClock, secret: bytes, customer: Customer
) -> IssuedKey:
    """The customer's admin key: one model, 60 rpm, expires in a week."""
    return await trusted(
        sqlite_db,
        clock,
        secret,
        customer_id=customer.id,
        scopes=["admin"],
        allowed_models=[ISSUER_MODEL],
        rate_limit_rpm=ISSUER_RPM,
        expires_at=clock.now() + ISSUER_LIFETIME,
    )


class TestBounds:
    async def test_narrower_key_is_issued_as_asked(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, restricted: IssuedKey
    ) -> None:
        expires_at = clock.now() + timedelta(days=1)

        key = await mint(
            sqlite_db,
            clock,
            secret,
            restricted,
            scopes=["read"],
            allowed_models=[],
            rate_limit_rpm=ISSUER_RPM - 1,
            expires_at=expires_at,
        )

        assert key.scopes == ["read"]
        assert key.allowed_models == []
        assert key.rate_limit_rpm == ISSUER_RPM - 1
        assert key.expires_at == expires_at

    async def test_key_equal_to_the_issuer_is_within_its_bounds(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, restricted: IssuedKey
    ) -> None:
        key = await mint(
            sqlite_db,
            clock,
            secret,
            restricted,
            scopes=["admin", "read", "write"],
            allowed_models=[ISSUER_MODEL],
            rate_limit_rpm=ISSUER_RPM,
            expires_at=restricted.key.expires_at,
        )

        assert key.scopes == ["admin", "read", "write"]

    @pytest.mark.parametrize(
        ("issuer_scopes", "wanted"),
        [(["read"], ["write"]), (["read"], ["read", "write"]), (["read", "write"], ["admin"])],
        ids=["write-from-read", "read-write-from-read", "admin-from-read-write"],
    )
    async def test_scope_the_issuer_lacks_is_refused(
        self,
        sqlite_db: Database,
        clock: FrozenClock,
        secret: bytes,
        customer: Customer,
        issuer_scopes: list[str],
        wanted: list[str],
    ) -> None:
        issuer = await trusted(
            sqlite_db, clock, secret, customer_id=customer.id, scopes=issuer_scopes
        )

        error = await refused(sqlite_db, clock, secret, issuer, scopes=wanted)

        assert (error.status, error.code) == (403, "key-exceeds-issuer")
        assert error.extra["fields"] == ["scopes"]

    async def test_model_outside_the_issuers_list_is_refused(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, restricted: IssuedKey
    ) -> None:
        error = await refused(
            sqlite_db, clock, secret, restricted, allowed_models=[ISSUER_MODEL, "gpt-4o"]
        )

        assert error.extra["fields"] == ["allowed_models"]

    async def test_higher_rpm_is_refused(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, restricted: IssuedKey
    ) -> None:
        error = await refused(sqlite_db, clock, secret, restricted, rate_limit_rpm=ISSUER_RPM + 1)

        assert error.extra["fields"] == ["rate_limit_rpm"]

    async def test_later_expiry_is_refused(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, restricted: IssuedKey
    ) -> None:
        assert restricted.key.expires_at is not None
        later = restricted.key.expires_at + timedelta(seconds=1)

        error = await refused(sqlite_db, clock, secret, restricted, expires_at=later)

        assert error.extra["fields"] == ["expires_at"]

    async def test_every_exceeding_field_is_named(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, customer: Customer
    ) -> None:
        issuer = await trusted(
            sqlite_db,
            clock,
            secret,
            customer_id=customer.id,
            scopes=["read"],
            allowed_models=[ISSUER_MODEL],
            rate_limit_rpm=ISSUER_RPM,
            expires_at=clock.now() + ISSUER_LIFETIME,
        )

        error = await refused(
            sqlite_db,
            clock,
            secret,
            issuer,
            scopes=["read", "write"],
            allowed_models=["gpt-4o"],
            rate_limit_rpm=ISSUER_RPM * 2,
            expires_at=clock.now() + ISSUER_LIFETIME * 2,
        )

        assert error.extra["fields"] == ["allowed_models", "expires_at", "rate_limit_rpm", "scopes"]
        assert "allowed_models, expires_at, rate_limit_rpm, scopes" in error.detail

    async def test_issuer_revoked_since_it_authenticated_mints_nothing(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, restricted: IssuedKey
    ) -> None:
        async with sqlite_db.transaction() as session:
            await keys.revoke_key(session, restricted.key.id, clock=clock)

        with pytest.raises(InvalidKey):
            await mint(sqlite_db, clock, secret, restricted, scopes=["read"])


class TestInheritance:
    async def test_omitted_bounds_inherit_the_issuers(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, restricted: IssuedKey
    ) -> None:
        key = await mint(sqlite_db, clock, secret, restricted)

        assert key.allowed_models == [ISSUER_MODEL]
        assert key.rate_limit_rpm == ISSUER_RPM
        assert key.expires_at == restricted.key.expires_at
        assert key.scopes == ["read", "write"]

    async def test_omitted_scopes_are_narrowed_to_the_issuers(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, customer: Customer
    ) -> None:
        issuer = await trusted(sqlite_db, clock, secret, customer_id=customer.id, scopes=["read"])

        key = await mint(sqlite_db, clock, secret, issuer)

        assert key.scopes == ["read"]

    async def test_unbounded_issuer_leaves_omitted_fields_unbounded(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, customer: Customer
    ) -> None:
        issuer = await trusted(sqlite_db, clock, secret, customer_id=customer.id, scopes=["admin"])

        key = await mint(sqlite_db, clock, secret, issuer)

        assert (key.allowed_models, key.rate_limit_rpm, key.expires_at) == (None, None, None)


class TestOwners:
    async def test_customer_key_cannot_mint_an_operator_key(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, customer: Customer
    ) -> None:
        issuer = await trusted(sqlite_db, clock, secret, customer_id=customer.id, scopes=["admin"])

        error = await refused(sqlite_db, clock, secret, issuer, customer_id=None)

        assert error.extra["fields"] == ["customer_id"]

    async def test_customer_key_minting_for_another_customer_finds_no_customer(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, customer: Customer
    ) -> None:
        issuer = await trusted(sqlite_db, clock, secret, customer_id=customer.id, scopes=["admin"])
        async with sqlite_db.transaction() as session:
            other = await customers.create(session, name="Other", plan="pro", clock=clock)

        with pytest.raises(CustomerNotFound):
            await mint(sqlite_db, clock, secret, issuer, customer_id=other.id)

        assert await key_count(sqlite_db) == 1

    async def test_operator_key_mints_operator_and_customer_keys(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, customer: Customer
    ) -> None:
        operator = await trusted(sqlite_db, clock, secret, customer_id=None, scopes=["admin"])

        minted_operator = await mint(sqlite_db, clock, secret, operator, scopes=["admin"])
        minted_customer = await mint(
            sqlite_db, clock, secret, operator, customer_id=customer.id, scopes=["admin"]
        )

        assert minted_operator.customer_id is None
        assert minted_customer.customer_id == customer.id

    async def test_expiring_operator_key_mints_keys_that_expire_with_it(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, customer: Customer
    ) -> None:
        expires_at = clock.now() + timedelta(hours=1)
        operator = await trusted(
            sqlite_db, clock, secret, customer_id=None, scopes=["admin"], expires_at=expires_at
        )

        inherited = await mint(sqlite_db, clock, secret, operator, customer_id=customer.id)
        error = await refused(
            sqlite_db,
            clock,
            secret,
            operator,
            customer_id=customer.id,
            expires_at=expires_at + timedelta(days=1),
        )

        assert inherited.expires_at == expires_at
        assert error.extra["fields"] == ["expires_at"]

    async def test_trusted_context_mints_without_bounds(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        issued = await trusted(sqlite_db, clock, secret, customer_id=None, scopes=["admin"])

        assert issued.key.customer_id is None
        assert (issued.key.allowed_models, issued.key.expires_at) == (None, None)


ISSUER_MAX_IN_FLIGHT = 3


class TestInFlightBound:
    """`max_in_flight` is bounded like `rate_limit_rpm`: at most the issuer's, inherited."""

    @pytest.fixture
    async def capped(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, customer: Customer
    ) -> IssuedKey:
        return await trusted(
            sqlite_db,
            clock,
            secret,
            customer_id=customer.id,
            scopes=["admin"],
            max_in_flight=ISSUER_MAX_IN_FLIGHT,
        )

    async def test_higher_cap_is_refused(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, capped: IssuedKey
    ) -> None:
        error = await refused(
            sqlite_db, clock, secret, capped, max_in_flight=ISSUER_MAX_IN_FLIGHT + 1
        )

        assert error.extra["fields"] == ["max_in_flight"]

    async def test_omitted_cap_inherits_the_issuers_and_a_lower_one_is_kept(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes, capped: IssuedKey
    ) -> None:
        inherited = await mint(sqlite_db, clock, secret, capped)
        lower = await mint(sqlite_db, clock, secret, capped, max_in_flight=1)

        assert (inherited.max_in_flight, lower.max_in_flight) == (ISSUER_MAX_IN_FLIGHT, 1)
