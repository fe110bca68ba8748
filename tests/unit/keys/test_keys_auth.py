"""KeyAuthenticator: principal resolution, rejection, cache, last-used batching."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from tollhouse.clock import FrozenClock
from tollhouse.customers import Customer
from tollhouse.customers import service as customers
from tollhouse.errors import Forbidden, Unauthenticated
from tollhouse.keys import (
    InsufficientScope,
    InvalidKey,
    IssuedKey,
    KeyAuthenticator,
    MalformedKey,
    Principal,
    generate_key,
)
from tollhouse.keys import service as keys
from tollhouse.storage import Database

TTL_SECONDS = 30.0
NEGATIVE_TTL_SECONDS = 5.0


@pytest.fixture
async def auth(
    sqlite_db: Database, clock: FrozenClock, secret: bytes
) -> AsyncIterator[KeyAuthenticator]:
    authenticator = KeyAuthenticator(
        sqlite_db,
        secret=secret,
        clock=clock,
        cache_ttl_seconds=TTL_SECONDS,
        negative_ttl_seconds=NEGATIVE_TTL_SECONDS,
    )
    yield authenticator
    await authenticator.stop()


async def issue(db: Database, clock: FrozenClock, secret: bytes, **kwargs: Any) -> IssuedKey:
    kwargs.setdefault("customer_id", None)
    kwargs.setdefault("name", "k")
    async with db.transaction() as session:
        return await keys.create_key(session, issuer=None, secret=secret, clock=clock, **kwargs)


async def revoke(db: Database, clock: FrozenClock, key_id: str) -> None:
    async with db.transaction() as session:
        await keys.revoke_key(session, key_id, clock=clock)


async def rejection(auth: KeyAuthenticator, raw: str) -> Unauthenticated:
    with pytest.raises(Unauthenticated) as caught:
        await auth.authenticate(raw)
    return caught.value


class TestAuthenticate:
    async def test_customer_key_resolves_to_principal_with_customer_plan(
        self,
        auth: KeyAuthenticator,
        sqlite_db: Database,
        clock: FrozenClock,
        secret: bytes,
        customer: Customer,
    ) -> None:
        issued = await issue(
            sqlite_db,
            clock,
            secret,
            customer_id=customer.id,
            scopes=["read"],
            allowed_models=["flux"],
            rate_limit_rpm=10,
        )
        principal = await auth.authenticate(issued.secret)
        assert principal == Principal(
            key_id=issued.key.id,
            customer_id=customer.id,
            scopes=frozenset({"read"}),
            allowed_models=frozenset({"flux"}),
            rate_limit_rpm=10,
            plan="pro",
        )

    async def test_operator_key_has_empty_plan(
        self, auth: KeyAuthenticator, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        issued = await issue(sqlite_db, clock, secret, scopes=["admin"])
        principal = await auth.authenticate(issued.secret)
        assert principal.is_operator
        assert principal.customer_id is None
        assert principal.plan == ""

    async def test_malformed_key_is_rejected_without_any_query(
        self, auth: KeyAuthenticator, queries: list[str]
    ) -> None:
        good = generate_key()
        typo = good[:10] + ("a" if good[10] != "a" else "b") + good[11:]
        for raw in ["", "garbage", typo, "th_live_short"]:
            error = await rejection(auth, raw)
            assert isinstance(error, MalformedKey)
        assert len(queries) == 0
        assert auth.lookups == 0

    async def test_unknown_revoked_and_expired_share_one_answer(
        self,
        auth: KeyAuthenticator,
        sqlite_db: Database,
        clock: FrozenClock,
        secret: bytes,
    ) -> None:
        revoked = await issue(sqlite_db, clock, secret)
        await revoke(sqlite_db, clock, revoked.key.id)
        expired = await issue(sqlite_db, clock, secret, expires_at=clock.now() + timedelta(1))
        clock.advance(86400)
        errors = [
            await rejection(auth, raw) for raw in (generate_key(), revoked.secret, expired.secret)
        ]
        assert all(isinstance(e, InvalidKey) for e in errors)
        assert {(e.status, e.code, e.detail) for e in errors} == {
            (401, "invalid-key", errors[0].detail)
        }

    async def test_key_signed_with_another_secret_is_unknown(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        issued = await issue(sqlite_db, clock, secret)
        other = KeyAuthenticator(sqlite_db, secret=b"another secret", clock=clock)
        assert isinstance(await rejection(other, issued.secret), InvalidKey)


class TestCache:
    async def test_cache_hit_avoids_the_database(
        self,
        auth: KeyAuthenticator,
        sqlite_db: Database,
        clock: FrozenClock,
        secret: bytes,
        queries: list[str],
    ) -> None:
        issued = await issue(sqlite_db, clock, secret)
        await auth.authenticate(issued.secret)
        after_first = len(queries)
        for _ in range(10):
            await auth.authenticate(issued.secret)
        assert after_first >= 1
        assert len(queries) == after_first
        assert (auth.lookups, auth.hits) == (1, 10)

    async def test_positive_entry_is_refreshed_after_ttl(
        self, auth: KeyAuthenticator, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        issued = await issue(sqlite_db, clock, secret)
        await auth.authenticate(issued.secret)
        clock.advance(TTL_SECONDS)
        await auth.authenticate(issued.secret)
        assert auth.lookups == 2

    async def test_revoked_key_is_rejected_at_once_after_invalidate(
        self, auth: KeyAuthenticator, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        issued = await issue(sqlite_db, clock, secret)
        await auth.authenticate(issued.secret)
        await revoke(sqlite_db, clock, issued.key.id)
        auth.invalidate(issued.key.id)
        assert isinstance(await rejection(auth, issued.secret), InvalidKey)

    async def test_revocation_elsewhere_is_seen_within_the_ttl(
        self, auth: KeyAuthenticator, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        issued = await issue(sqlite_db, clock, secret)
        await auth.authenticate(issued.secret)
        await revoke(sqlite_db, clock, issued.key.id)  # another process: no invalidate here
        clock.advance(TTL_SECONDS - 1)
        await auth.authenticate(issued.secret)  # still cached: bounded staleness
        clock.advance(1)
        assert isinstance(await rejection(auth, issued.secret), InvalidKey)

    async def test_key_expiring_while_cached_is_rejected_without_a_query(
        self,
        auth: KeyAuthenticator,
        sqlite_db: Database,
        clock: FrozenClock,
        secret: bytes,
        queries: list[str],
    ) -> None:
        issued = await issue(
            sqlite_db, clock, secret, expires_at=clock.now() + timedelta(seconds=10)
        )
        await auth.authenticate(issued.secret)
        before = len(queries)
        clock.advance(9.999)
        await auth.authenticate(issued.secret)
        clock.advance(0.001)
        assert isinstance(await rejection(auth, issued.secret), InvalidKey)
        assert len(queries) == before

    async def test_bad_key_flood_costs_one_lookup_per_negative_ttl(
        self, auth: KeyAuthenticator, clock: FrozenClock
    ) -> None:
        unknown = generate_key()
        for _ in range(100):
            await rejection(auth, unknown)
        assert auth.lookups == 1
        clock.advance(NEGATIVE_TTL_SECONDS)
        await rejection(auth, unknown)
        assert auth.lookups == 2

    async def test_concurrent_misses_share_one_lookup(
        self, auth: KeyAuthenticator, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        issued = await issue(sqlite_db, clock, secret)
        principals = await asyncio.gather(*(auth.authenticate(issued.secret) for _ in range(50)))
        assert {p.key_id for p in principals} == {issued.key.id}
        assert auth.lookups == 1

    async def test_cache_is_bounded(self, sqlite_db: Database, clock: FrozenClock) -> None:
        auth = KeyAuthenticator(sqlite_db, secret=b"s", clock=clock, max_entries=3)
        for _ in range(10):
            await rejection(auth, generate_key())
        assert auth.cached_entries == 3

    async def test_invalidate_customer_picks_up_a_plan_change(
        self,
        auth: KeyAuthenticator,
        sqlite_db: Database,
        clock: FrozenClock,
        secret: bytes,
        customer: Customer,
    ) -> None:
        issued = await issue(sqlite_db, clock, secret, customer_id=customer.id)
        assert (await auth.authenticate(issued.secret)).plan == "pro"
        async with sqlite_db.transaction() as session:
            await customers.set_plan(session, customer.id, "enterprise")
        assert (await auth.authenticate(issued.secret)).plan == "pro"  # cached
        auth.invalidate_customer(customer.id)
        assert (await auth.authenticate(issued.secret)).plan == "enterprise"

    async def test_caller_session_is_used_for_the_lookup(
        self, auth: KeyAuthenticator, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        issued = await issue(sqlite_db, clock, secret)
        # SQLite has one pooled connection: a second session would wait for this one.
        async with sqlite_db.transaction() as session:
            principal = await asyncio.wait_for(
                auth.authenticate(issued.secret, session=session), timeout=5
            )
        assert principal.key_id == issued.key.id


class TestScopes:
    def principal(self, *scopes: str, models: frozenset[str] | None = None) -> Principal:
        return Principal(
            key_id="key_x",
            customer_id="cus_x",
            scopes=frozenset(scopes),
            allowed_models=models,
            rate_limit_rpm=None,
            plan="free",
        )

    def test_missing_scope_raises_insufficient_scope(self) -> None:
        with pytest.raises(InsufficientScope) as caught:
            self.principal("read").require("write")
        assert isinstance(caught.value, Forbidden)
        assert caught.value.status == 403
        assert caught.value.code == "insufficient-scope"
        assert caught.value.extra["required_scope"] == "write"

    def test_present_scope_passes(self) -> None:
        self.principal("read", "write").require("write")

    def test_admin_implies_read_and_write(self) -> None:
        admin = self.principal("admin")
        for scope in ("read", "write", "admin"):
            admin.require(scope)
        with pytest.raises(InsufficientScope):
            self.principal("read", "write").require("admin")

    def test_allowed_models_none_means_every_model(self) -> None:
        assert self.principal("read").can_use_model("anything")
        limited = self.principal("read", models=frozenset({"flux"}))
        assert limited.can_use_model("flux")
        assert not limited.can_use_model("gpt-4o")
        assert not self.principal("read", models=frozenset()).can_use_model("flux")


class TestLastUsed:
    async def test_flush_writes_the_latest_use_once(
        self,
        auth: KeyAuthenticator,
        sqlite_db: Database,
        clock: FrozenClock,
        secret: bytes,
        queries: list[str],
    ) -> None:
        issued = await issue(sqlite_db, clock, secret)
        for _ in range(5):
            clock.advance(1)
            await auth.authenticate(issued.secret)
        last_use = clock.now()
        assert await auth.flush_last_used() == 1
        before = len(queries)
        assert await auth.flush_last_used() == 0  # nothing touched since: no query
        assert len(queries) == before
        async with sqlite_db.sessions() as session:
            key = await keys.get_key(session, issued.key.id)
        assert key.last_used_at == last_use

    async def test_flush_of_many_keys_is_one_statement(
        self,
        auth: KeyAuthenticator,
        sqlite_db: Database,
        clock: FrozenClock,
        secret: bytes,
        queries: list[str],
    ) -> None:
        issued = [await issue(sqlite_db, clock, secret) for _ in range(5)]
        for item in issued:
            auth.touch(item.key.id)
        before = len(queries)
        assert await auth.flush_last_used() == 5
        flushed = queries[before:]
        assert len([s for s in flushed if s.lstrip().upper().startswith("UPDATE")]) == 1
        async with sqlite_db.sessions() as session:
            stored = await keys.list_keys(session, customer_id=None)
        assert {k.last_used_at for k in stored} == {clock.now()}

    async def test_last_used_never_moves_backwards(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        issued = await issue(sqlite_db, clock, secret)
        early = clock.now()
        late_clock = FrozenClock(early + timedelta(minutes=5))
        late = KeyAuthenticator(sqlite_db, secret=secret, clock=late_clock)
        early_auth = KeyAuthenticator(sqlite_db, secret=secret, clock=clock)
        late.touch(issued.key.id)
        early_auth.touch(issued.key.id)
        await late.flush_last_used()
        await early_auth.flush_last_used()
        async with sqlite_db.sessions() as session:
            key = await keys.get_key(session, issued.key.id)
        assert key.last_used_at == late_clock.now()

    async def test_failed_flush_keeps_touches_for_the_next(
        self,
        auth: KeyAuthenticator,
        sqlite_db: Database,
        clock: FrozenClock,
        secret: bytes,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        issued = await issue(sqlite_db, clock, secret)
        auth.touch(issued.key.id)

        def broken() -> Any:
            raise ConnectionError("database down")

        with monkeypatch.context() as patch:
            patch.setattr(sqlite_db, "transaction", broken)
            with pytest.raises(ConnectionError):
                await auth.flush_last_used()
        assert await auth.flush_last_used() == 1

    async def test_stop_flushes_what_is_left(
        self, auth: KeyAuthenticator, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        issued = await issue(sqlite_db, clock, secret)
        auth.start()
        await auth.authenticate(issued.secret)
        await auth.stop()
        async with sqlite_db.sessions() as session:
            key = await keys.get_key(session, issued.key.id)
        assert key.last_used_at == clock.now()

    async def test_background_task_flushes_periodically(
        self, sqlite_db: Database, clock: FrozenClock, secret: bytes
    ) -> None:
        issued = await issue(sqlite_db, clock, secret)
        auth = KeyAuthenticator(sqlite_db, secret=secret, clock=clock, flush_interval_seconds=0.01)
        auth.start()
        try:
            auth.touch(issued.key.id)
            for _ in range(500):
                await asyncio.sleep(0.01)
                async with sqlite_db.sessions() as session:
                    if (await keys.get_key(session, issued.key.id)).last_used_at is not None:
                        break
            else:
                pytest.fail("last_used_at was never flushed")
        finally:
            await auth.stop()
