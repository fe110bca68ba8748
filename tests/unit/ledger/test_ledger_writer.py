"""The group-commit writer: batching, isolation of failures, durability, lifecycle."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError
from tests.support.statements import recorded_statements

from tollhouse.clock import FrozenClock
from tollhouse.ids import new_id as real_new_id
from tollhouse.ledger import (
    GrantView,
    HoldNotOpen,
    HoldView,
    InsufficientCredit,
    Ledger,
    LedgerClosed,
)
from tollhouse.ledger import service as ledger_service
from tollhouse.ledger.writer import apply as apply_module
from tollhouse.ledger.writer import batch as batch_module
from tollhouse.ledger.writer import cached as cached_module
from tollhouse.ledger.writer.ops import GrantOp
from tollhouse.ledger.writer.state import BatchState
from tollhouse.storage import Database
from tollhouse.storage.driver import CommitError

from .conftest import Check, Wallet, grant_elsewhere, stored_hold


class TestGroupCommit:
    async def test_concurrent_ops_share_commits(
        self, ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await ledger.grant("cus_a", 10_000, idempotency_key="g")
        batches_before = ledger.batches

        holds = await asyncio.gather(*(ledger.hold("cus_a", 10) for _ in range(100)))

        assert len({h.id for h in holds}) == 100
        assert ledger.batches - batches_before <= 3  # one op, then everything queued meanwhile
        assert (await wallet("cus_a")).held_micros == 1_000
        await consistent()

    async def test_max_batch_bounds_ops_per_commit(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        async with Ledger(sqlite_db, clock=clock, max_batch=4) as small:
            await asyncio.gather(
                *(small.grant(f"cus_{n}", 1, idempotency_key="g") for n in range(20))
            )
            assert small.batches >= 5
            assert small.ops == 20

    async def test_a_business_failure_fails_only_its_op(
        self, ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await ledger.grant("cus_a", 100, idempotency_key="g")

        results = await asyncio.gather(
            ledger.hold("cus_a", 60),
            ledger.hold("cus_a", 60),  # fails: only 40 left after the first
            ledger.hold("cus_a", 40),
            return_exceptions=True,
        )

        assert isinstance(results[1], InsufficientCredit)
        assert not isinstance(results[0], BaseException)
        assert not isinstance(results[2], BaseException)
        assert (await wallet("cus_a")).held_micros == 100
        await consistent()

    async def test_a_database_error_fails_only_its_op(
        self,
        ledger: Ledger,
        wallet: Wallet,
        consistent: Check,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        taken = await ledger.grant("cus_x", 1, idempotency_key="first")
        await ledger.grant("cus_a", 100, idempotency_key="g")
        real_grant = apply_module.apply_grant

        def grant_reusing_an_account_id(state: BatchState, op: GrantOp) -> GrantView:
            if op.customer_id != "cus_bad":
                return real_grant(state, op)
            monkeypatch.setattr(apply_module, "new_id", lambda prefix: taken.id)
            try:
                return real_grant(state, op)  # its INSERT will hit the primary key
            finally:
                monkeypatch.setattr(apply_module, "new_id", real_new_id)

        monkeypatch.setattr(apply_module, "apply_grant", grant_reusing_an_account_id)

        bad, good, hold = await asyncio.gather(
            ledger.grant("cus_bad", 5, idempotency_key="g"),
            ledger.grant("cus_c", 5, idempotency_key="g"),
            ledger.hold("cus_a", 30),
            return_exceptions=True,
        )

        assert isinstance(bad, IntegrityError)
        assert not isinstance(good, BaseException)
        assert not isinstance(hold, BaseException)
        assert (await wallet("cus_bad")).available_micros == 0
        assert (await wallet("cus_c")).available_micros == 5
        assert (await wallet("cus_a")).held_micros == 30
        await consistent()

    async def test_answers_are_durable_before_they_are_returned(
        self, ledger: Ledger, db: Database, clock: FrozenClock
    ) -> None:
        await ledger.grant("cus_a", 100, idempotency_key="g")
        hold = await ledger.hold("cus_a", 10)

        other = Database(db.url)  # a fresh engine sees only committed data
        try:
            async with other.sessions() as session:
                stored = await ledger_service.get_hold(session, hold.id)
        finally:
            await other.dispose()
        assert stored == replace(hold, available_after_micros=None)


class TestLifecycle:
    async def test_stop_drains_queued_ops(
        self, sqlite_db: Database, clock: FrozenClock, wallet: Wallet
    ) -> None:
        ledger = Ledger(sqlite_db, clock=clock)
        await ledger.start()
        calls = [
            asyncio.create_task(ledger.grant(f"cus_{n}", 7, idempotency_key="g")) for n in range(30)
        ]
        await asyncio.sleep(0)  # let every call enqueue

        await ledger.stop()

        assert all(task.done() and task.exception() is None for task in calls)
        assert (await wallet("cus_29")).available_micros == 7

    async def test_calls_after_stop_raise_closed(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        ledger = Ledger(sqlite_db, clock=clock)
        await ledger.start()
        await ledger.stop()

        with pytest.raises(LedgerClosed) as raised:
            await ledger.hold("cus_a", 1)
        assert raised.value.status == 503

    async def test_calls_start_the_writer_lazily(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        ledger = Ledger(sqlite_db, clock=clock)
        try:
            grant = await ledger.grant("cus_a", 1, idempotency_key="g")
        finally:
            await ledger.stop()
        assert grant.remaining == 1


class TestSeveralWriters:
    async def test_a_hold_settled_by_another_writer_is_reread_not_trusted(
        self,
        ledger: Ledger,
        db: Database,
        clock: FrozenClock,
        wallet: Wallet,
        consistent: Check,
    ) -> None:
        await ledger.grant("cus_a", 1_000, idempotency_key="g")
        hold = await ledger.hold("cus_a", 500)  # cached as open by `ledger`
        other_db = Database(db.url)
        try:
            async with Ledger(other_db, clock=clock) as other:
                await other.capture(hold.id, 200)

            again = await ledger.capture(hold.id, 200)  # same amount: idempotent
            with pytest.raises(HoldNotOpen):
                await ledger.void(hold.id)
        finally:
            await other_db.dispose()

        assert (again.status, again.captured_amount) == ("captured", 200)
        assert (await wallet("cus_a")).available_micros == 800
        await consistent()


class TestSqliteAccountCache:
    async def test_credit_granted_through_another_connection_is_seen(
        self,
        sqlite_ledger: Ledger,
        sqlite_db: Database,
        clock: FrozenClock,
        wallet: Wallet,
        consistent: Check,
    ) -> None:
        await sqlite_ledger.grant("cus_a", 100, idempotency_key="g")
        await sqlite_ledger.hold("cus_a", 60)  # cus_a's accounts are now cached
        other_db = Database(sqlite_db.url)
        try:
            async with Ledger(other_db, clock=clock) as other:
                await other.grant("cus_a", 100, idempotency_key="g2")
        finally:
            await other_db.dispose()

        hold = await sqlite_ledger.hold("cus_a", 120)  # needs the other process's grant

        assert hold.available_after_micros == 20
        assert (await wallet("cus_a")).held_micros == 180
        await consistent()

    async def test_a_reused_hold_key_returns_the_first_hold(
        self, sqlite_ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await sqlite_ledger.grant("cus_a", 100, idempotency_key="g")
        first = await sqlite_ledger.hold("cus_a", 10, idempotency_key="k")

        again, other = await asyncio.gather(
            sqlite_ledger.hold("cus_a", 10, idempotency_key="k"),
            sqlite_ledger.hold("cus_a", 5),
        )

        assert again.id == first.id
        assert other.id != first.id
        assert (await wallet("cus_a")).held_micros == 15
        await consistent()

    async def test_captures_and_voids_of_cached_holds_settle_them(
        self, sqlite_ledger: Ledger, wallet: Wallet, consistent: Check
    ) -> None:
        await sqlite_ledger.grant("cus_a", 100, idempotency_key="g")
        holds = await asyncio.gather(*(sqlite_ledger.hold("cus_a", 10) for _ in range(6)))

        await asyncio.gather(
            *(sqlite_ledger.capture(h.id, 4) for h in holds[:3]),
            *(sqlite_ledger.void(h.id) for h in holds[3:]),
        )

        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (88, 0)
        await consistent()


@pytest.fixture
def commit_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[asyncio.Event]:
    """Cached batches' writes wait for this event (set: open) before their transaction.
    Opened again after the test (before the ledger stops), whatever the test did."""
    gate = asyncio.Event()
    gate.set()
    real = cached_module.run_transaction

    async def gated(engine: Any, work: Any) -> Any:
        await gate.wait()
        return await real(engine, work)

    monkeypatch.setattr(cached_module, "run_transaction", gated)
    yield gate
    gate.set()


async def queued_hold(ledger: Ledger, amount: int) -> asyncio.Task[HoldView]:
    """A hold of cus_a, asked in its own batch (the writer has taken it when this returns)."""
    task = asyncio.create_task(ledger.hold("cus_a", amount))
    await asyncio.sleep(0.02)
    return task


@pytest.fixture
def write_gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[asyncio.Event]:
    """General-path batches (PostgreSQL's) wait for this event (set: open) after deciding
    their ops, before their writes. Opened again after the test, whatever the test did."""
    gate = asyncio.Event()
    gate.set()
    real = batch_module.flush

    async def gated(conn: Any, state: BatchState, *, is_postgres: bool) -> None:
        await gate.wait()
        await real(conn, state, is_postgres=is_postgres)

    monkeypatch.setattr(batch_module, "flush", gated)
    yield gate
    gate.set()


class TestAnswersAfterCommit:
    """Every answer of the ledger is given after the commit that stores it: on SQLite's cached
    batches and on PostgreSQL's general path alike (nothing is answered early)."""

    async def test_a_cached_hold_is_answered_once_its_commit_has_stored_it(
        self,
        sqlite_ledger: Ledger,
        sqlite_db: Database,
        commit_gate: asyncio.Event,
        consistent: Check,
    ) -> None:
        await sqlite_ledger.grant("cus_a", 100, idempotency_key="g")
        await sqlite_ledger.hold("cus_a", 10)  # cus_a's accounts are now cached
        commit_gate.clear()

        waiting = await queued_hold(sqlite_ledger, 30)
        await asyncio.sleep(0.05)
        assert not waiting.done()

        commit_gate.set()
        hold = await asyncio.wait_for(waiting, 5)
        stored = await stored_hold(sqlite_db, hold.id)
        assert stored is not None and (stored.amount, stored.status) == (30, "open")
        await consistent()

    async def test_a_general_hold_is_answered_once_its_commit_has_stored_it(
        self,
        postgres_db: Database,
        clock: FrozenClock,
        write_gate: asyncio.Event,
        wallet: Wallet,
        consistent: Check,
    ) -> None:
        async with Ledger(postgres_db, clock=clock) as ledger:
            await grant_elsewhere(postgres_db, clock, "cus_a", 100)  # not cached here
            write_gate.clear()
            try:
                waiting = await queued_hold(ledger, 30)
                await asyncio.sleep(0.1)
                assert not waiting.done()
            finally:
                write_gate.set()  # else stopping the ledger waits for the gated batch
            hold = await asyncio.wait_for(waiting, 5)
            stored = await stored_hold(postgres_db, hold.id)
            assert stored == replace(hold, available_after_micros=None)
        assert (await wallet("cus_a")).held_micros == 30
        await consistent()


class TestPipelinedCommits:
    """SQLite: cached batches are decided while earlier ones commit
    (`writer/pipeline_sqlite.py`)."""

    async def test_batches_applied_during_a_commit_share_the_next_transaction(
        self,
        sqlite_ledger: Ledger,
        sqlite_db: Database,
        commit_gate: asyncio.Event,
        wallet: Wallet,
        consistent: Check,
    ) -> None:
        await sqlite_ledger.grant("cus_a", 100, idempotency_key="g")
        await sqlite_ledger.hold("cus_a", 1)  # cus_a's accounts are now cached
        commit_gate.clear()
        batches_before = sqlite_ledger.batches

        # One batch each, all decided while the first one's write waits; 39 are left then.
        waiting = [await queued_hold(sqlite_ledger, n) for n in (10, 20, 30)]
        refused = await queued_hold(sqlite_ledger, 40)

        assert not any(task.done() for task in [*waiting, refused])
        assert sqlite_ledger.batches == batches_before
        commit_gate.set()
        answered = [await asyncio.wait_for(task, 5) for task in waiting]
        with pytest.raises(InsufficientCredit):
            await refused

        assert [h.available_after_micros for h in answered] == [89, 69, 39]
        assert sqlite_ledger.batches == batches_before + 2  # the first, then all the rest
        stored = [await stored_hold(sqlite_db, h.id) for h in answered]
        assert [(h.amount, h.status) for h in stored if h] == [
            (10, "open"),
            (20, "open"),
            (30, "open"),
        ]
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (39, 61)
        await consistent()

    async def test_a_failed_write_has_its_batches_and_later_ones_redone_in_order(
        self,
        sqlite_ledger: Ledger,
        sqlite_db: Database,
        clock: FrozenClock,
        commit_gate: asyncio.Event,
        wallet: Wallet,
        consistent: Check,
    ) -> None:
        await sqlite_ledger.grant("cus_a", 100, idempotency_key="g")
        await sqlite_ledger.hold("cus_a", 1)  # cus_a's accounts are now cached
        commit_gate.clear()
        first = await queued_hold(sqlite_ledger, 10)
        second = await queued_hold(sqlite_ledger, 20)
        await grant_elsewhere(sqlite_db, clock, "cus_a", 50)  # the pending writes are stale

        commit_gate.set()
        holds = [await asyncio.wait_for(task, 5) for task in (first, second)]

        stored = [await stored_hold(sqlite_db, h.id) for h in holds]
        assert [(h.amount, h.status) for h in stored if h] == [(10, "open"), (20, "open")]
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (119, 31)
        await consistent()

    async def test_a_failed_commit_fails_its_ops_and_redoes_later_batches(
        self,
        sqlite_ledger: Ledger,
        sqlite_db: Database,
        wallet: Wallet,
        consistent: Check,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        await sqlite_ledger.grant("cus_a", 100, idempotency_key="g")
        held = await sqlite_ledger.hold("cus_a", 10)  # cus_a's accounts are now cached
        real = cached_module.run_transaction
        release = asyncio.Event()
        failures = [sqlite3.OperationalError("disk I/O error")]

        async def first_commit_fails(engine: Any, work: Any) -> Any:
            if failures:
                await release.wait()
                raise CommitError(failures.pop())
            return await real(engine, work)

        monkeypatch.setattr(cached_module, "run_transaction", first_commit_fails)
        capture = asyncio.create_task(sqlite_ledger.capture(held.id, 4))
        await asyncio.sleep(0.05)  # its write is in flight
        later = asyncio.create_task(sqlite_ledger.hold("cus_a", 30))
        await asyncio.sleep(0.05)  # decided over the capture, which will not be stored
        release.set()

        with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
            await asyncio.wait_for(capture, 5)
        hold = await asyncio.wait_for(later, 5)

        assert hold.amount == 30
        assert await stored_hold(sqlite_db, hold.id) is not None
        stored = await stored_hold(sqlite_db, held.id)
        assert stored is not None and stored.status == "open"  # the capture was not stored
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (60, 40)
        await consistent()


class TestBoundedCacheOnSqlite:
    async def test_the_customer_cached_longest_ago_is_read_again(
        self, sqlite_db: Database, clock: FrozenClock
    ) -> None:
        async with Ledger(sqlite_db, clock=clock, max_cached_customers=2) as ledger:
            for customer in ("cus_a", "cus_b", "cus_c"):
                await ledger.grant(customer, 100, idempotency_key="g")
            with recorded_statements(sqlite_db) as statements:
                await ledger.hold("cus_c", 1)
                await ledger.hold("cus_b", 1)
                assert statements == []  # both cached: written on the driver's thread
                await ledger.hold("cus_a", 1)
                assert any("FROM ledger_accounts" in s for s in statements)
