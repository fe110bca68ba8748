"""The group-commit writer: batching, isolation of failures, durability, lifecycle."""

from __future__ import annotations

import asyncio
import logging
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


async def early_hold(ledger: Ledger, amount: int) -> HoldView:
    """A hold of cus_a answered before its commit (5 s at most: it must not wait for one)."""
    return await asyncio.wait_for(ledger.hold("cus_a", amount, answer_before_commit=True), 5)


class TestAnswerBeforeCommit:
    """`hold(answer_before_commit=True)` on SQLite's cached batches (the gateway's holds)."""

    async def test_the_hold_is_answered_at_once_and_stored_by_its_commit(
        self,
        sqlite_ledger: Ledger,
        sqlite_db: Database,
        commit_gate: asyncio.Event,
        consistent: Check,
    ) -> None:
        await sqlite_ledger.grant("cus_a", 100, idempotency_key="g")
        await sqlite_ledger.hold("cus_a", 10)  # cus_a's accounts are now cached
        commit_gate.clear()

        early = await early_hold(sqlite_ledger, 30)
        waiting = asyncio.create_task(sqlite_ledger.hold("cus_a", 5))
        await asyncio.sleep(0.05)

        assert early.available_after_micros == 60
        assert await stored_hold(sqlite_db, early.id) is None  # not committed yet
        assert not waiting.done()  # a plain hold waits for the commit
        commit_gate.set()
        await waiting
        stored = await stored_hold(sqlite_db, early.id)
        assert stored is not None and (stored.amount, stored.status) == (30, "open")
        await consistent()

    async def test_a_batch_redone_the_general_way_stores_the_answered_hold_id(
        self,
        sqlite_ledger: Ledger,
        sqlite_db: Database,
        clock: FrozenClock,
        commit_gate: asyncio.Event,
        wallet: Wallet,
        consistent: Check,
    ) -> None:
        await sqlite_ledger.grant("cus_a", 100, idempotency_key="g")
        await sqlite_ledger.hold("cus_a", 10)  # cus_a's accounts are now cached
        commit_gate.clear()
        early = await early_hold(sqlite_ledger, 30)
        await grant_elsewhere(sqlite_db, clock, "cus_a", 50)

        commit_gate.set()
        captured = await sqlite_ledger.capture(early.id, 20)

        assert (captured.status, captured.captured_amount) == ("captured", 20)
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (120, 10)
        await consistent()


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


class TestEarlyHoldsOnPostgres:
    """On PostgreSQL's general path an early hold is answered under its batch's locks, before
    its writes and COMMIT, and its key is not looked up. (Another process grants, so the
    ledger under test has not cached the customer's accounts.)"""

    async def test_answered_before_the_writes_and_stored_by_the_commit(
        self,
        postgres_db: Database,
        clock: FrozenClock,
        write_gate: asyncio.Event,
        wallet: Wallet,
        consistent: Check,
    ) -> None:
        async with Ledger(postgres_db, clock=clock) as ledger:
            await grant_elsewhere(postgres_db, clock, "cus_a", 100)
            write_gate.clear()
            other_db = Database(postgres_db.url)
            try:
                early = await early_hold(ledger, 30)
                assert early.available_after_micros == 70
                assert await stored_hold(postgres_db, early.id) is None  # not written yet
                # Another writer waits for the customer's locks, so it decides over the hold.
                async with Ledger(other_db, clock=clock) as other:
                    refused = asyncio.create_task(other.hold("cus_a", 80))
                    await asyncio.sleep(0.2)
                    assert not refused.done()
                    write_gate.set()
                    with pytest.raises(InsufficientCredit):
                        await asyncio.wait_for(refused, 5)
            finally:
                write_gate.set()  # else stopping the ledger waits for the gated batch
                await other_db.dispose()
            stored = await stored_hold(postgres_db, early.id)
            assert stored == replace(early, available_after_micros=None)
        assert (await wallet("cus_a")).held_micros == 30
        await consistent()

    async def test_a_refusal_waits_for_the_commit(
        self, postgres_db: Database, clock: FrozenClock, write_gate: asyncio.Event
    ) -> None:
        async with Ledger(postgres_db, clock=clock) as ledger:
            await grant_elsewhere(postgres_db, clock, "cus_a", 100)
            write_gate.clear()
            refused = asyncio.create_task(ledger.hold("cus_a", 130, answer_before_commit=True))
            try:
                await asyncio.sleep(0.2)
                assert not refused.done()
            finally:
                write_gate.set()
            with pytest.raises(InsufficientCredit):
                await asyncio.wait_for(refused, 5)

    async def test_no_key_lookup_and_a_reused_key_is_never_stored(
        self,
        postgres_db: Database,
        clock: FrozenClock,
        wallet: Wallet,
        consistent: Check,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        async with Ledger(postgres_db, clock=clock) as ledger:
            await grant_elsewhere(postgres_db, clock, "cus_a", 100)
            with recorded_statements(postgres_db) as statements:
                hold = await ledger.hold(
                    "cus_a", 30, idempotency_key="req_1", answer_before_commit=True
                )
                reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
                assert reads and not any("ledger_holds" in s for s in reads)
                # A reused key breaks the contract: answered, refused by the unique index,
                # never stored, and logged.
                with caplog.at_level(logging.ERROR, logger="tollhouse.ledger.writer"):
                    reused = await ledger.hold(
                        "cus_a", 30, idempotency_key="req_1", answer_before_commit=True
                    )
                    await ledger.hold("cus_a", 1)  # the writer has moved on
            assert await stored_hold(postgres_db, reused.id) is None
            assert f"hold {reused.id} was answered before its commit" in caplog.text
            assert "IntegrityError" in caplog.text
            # A plain hold with that key finds the first one (the lookup is kept for it).
            again = await ledger.hold("cus_a", 30, idempotency_key="req_1")
            assert again.id == hold.id
        assert (await wallet("cus_a")).held_micros == 31
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

        # One batch each (each awaited alone), all decided while the first one's write waits.
        answered = [await early_hold(sqlite_ledger, n) for n in (10, 20, 30)]
        # 39 left: the unwritten holds count. A refusal is answered after its commit.
        refused = asyncio.create_task(sqlite_ledger.hold("cus_a", 40, answer_before_commit=True))
        capture = asyncio.create_task(sqlite_ledger.capture(answered[0].id, 4))
        await asyncio.sleep(0.05)

        assert [h.available_after_micros for h in answered] == [89, 69, 39]
        assert not refused.done()
        assert not capture.done()  # a capture is answered after its commit
        assert sqlite_ledger.batches == batches_before
        commit_gate.set()
        captured = await asyncio.wait_for(capture, 5)
        with pytest.raises(InsufficientCredit):
            await refused

        assert (captured.status, captured.captured_amount) == ("captured", 4)
        assert sqlite_ledger.batches == batches_before + 2  # the first, then all the rest
        stored = [await stored_hold(sqlite_db, h.id) for h in answered]
        assert [(h.amount, h.status) for h in stored if h] == [
            (10, "captured"),
            (20, "open"),
            (30, "open"),
        ]
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (45, 51)
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
        first = await early_hold(sqlite_ledger, 10)
        second = await early_hold(sqlite_ledger, 20)
        capture = asyncio.create_task(sqlite_ledger.capture(first.id, 10))
        await asyncio.sleep(0.05)
        await grant_elsewhere(sqlite_db, clock, "cus_a", 50)  # the pending writes are stale

        commit_gate.set()
        captured = await asyncio.wait_for(capture, 5)
        void = await sqlite_ledger.void(second.id)  # stored by the redo, under its answered id

        assert (captured.status, captured.captured_amount) == ("captured", 10)
        assert (void.id, void.status) == (second.id, "voided")
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (139, 1)
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
