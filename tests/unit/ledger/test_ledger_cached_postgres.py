"""PostgreSQL's cached batches: one autocommit statement over accounts cached at their escrow
version, and what happens when another writer moved the balances or changed the accounts
(`writer/cached_postgres.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from tests.support.statements import recorded_statements

from tollhouse.clock import FrozenClock
from tollhouse.ledger import HoldNotOpen, InsufficientCredit, Ledger
from tollhouse.ledger.models import AccountKind, account_id_for
from tollhouse.ledger.writer import cached_postgres
from tollhouse.storage import Database
from tollhouse.storage.driver import HeldConnection

from .conftest import Check, Counts, Wallet, grant_elsewhere, stored_hold

ESCROW = account_id_for(AccountKind.ESCROW, "usd", "cus_a")


@pytest.fixture
async def ledger(postgres_db: Database, clock: FrozenClock) -> AsyncIterator[Ledger]:
    """A ledger that granted cus_a 100 itself, so it has cached the customer's accounts."""
    async with Ledger(postgres_db, clock=clock) as started:
        await started.grant("cus_a", 100, idempotency_key="g")
        yield started


@pytest.fixture
async def other(postgres_db: Database, clock: FrozenClock) -> AsyncIterator[Ledger]:
    """Another process's ledger on the same database (its own engine)."""
    database = Database(postgres_db.url)
    try:
        async with Ledger(database, clock=clock) as started:
            yield started
    finally:
        await database.dispose()


@pytest.fixture
def statements(postgres_db: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Every statement the test's `postgres_db` engine sends from now on, through SQLAlchemy
    or a writer's `HeldConnection`."""
    real = HeldConnection.fetch

    async def fetch(self: HeldConnection, sql: str, *args: Any) -> Any:
        seen.append(sql)
        return await real(self, sql, *args)

    monkeypatch.setattr(HeldConnection, "fetch", fetch)
    with recorded_statements(postgres_db) as seen:
        yield seen


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    """A customer whose cached statement failed is cached again at once."""
    monkeypatch.setattr(cached_postgres, "CONTENDED_SECONDS", 0.0)


@pytest.fixture
async def missed_once(
    ledger: Ledger, postgres_db: Database, clock: FrozenClock, statements: list[str]
) -> None:
    """A grant made elsewhere moved cus_a's version, so `ledger`'s next hold failed its cached
    statement and was served the general way; `statements` is cleared after it."""
    await grant_elsewhere(postgres_db, clock, "cus_a", 50)
    await ledger.hold("cus_a", 1)
    statements.clear()


@dataclass
class Gate:
    """Where cached statements wait: `reached` is set when one arrives, which is sent once
    `opened` is set."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    opened: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    """Every cached statement (one per batch, `write_alone`) waits at the yielded gate, which
    is opened when the test ends (before the ledgers stop)."""
    real = cached_postgres.write_alone
    waiting = Gate()

    async def write_once_opened(*args: Any) -> Any:
        waiting.reached.set()
        await waiting.opened.wait()
        return await real(*args)

    monkeypatch.setattr(cached_postgres, "write_alone", write_once_opened)
    yield waiting
    waiting.opened.set()


def locked(statements: list[str]) -> bool:
    """The general way: the escrow rows were locked with `SELECT ... FOR UPDATE`."""
    return any("FOR UPDATE" in s for s in statements)


async def escrow_version(db: Database) -> int:
    async with db.engine.connect() as conn:
        query = text("SELECT version FROM ledger_accounts WHERE id = :id")
        return int((await conn.execute(query, {"id": ESCROW})).scalar_one())


class TestOneStatement:
    async def test_a_batch_is_one_statement_and_stored_when_answered(
        self,
        ledger: Ledger,
        postgres_db: Database,
        statements: list[str],
        wallet: Wallet,
        consistent: Check,
    ) -> None:
        version = await escrow_version(postgres_db)
        statements.clear()

        hold = await ledger.hold("cus_a", 30)
        assert len(statements) == 1 and statements[0].startswith("WITH escrows AS")
        assert await stored_hold(postgres_db, hold.id) == replace(hold, available_after_micros=None)
        captured = await ledger.capture(hold.id, 10)
        assert len(statements) == 2 and captured.captured_amount == 10

        assert await escrow_version(postgres_db) == version  # balances only: no new version
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (90, 0)
        await consistent()


async def warm(ledger: Ledger) -> None:
    """Have `ledger` cache cus_a (its first batch on it reads the accounts)."""
    await ledger.void((await ledger.hold("cus_a", 1)).id)


@pytest.fixture
async def plenty(ledger: Ledger, clock: FrozenClock) -> None:
    """`ledger` has 10,100 in cus_a's wallet, a lot of 10,000 spent first (it expires), and
    has seen, in a statement, that nobody else took from it."""
    expires_at = clock.now() + timedelta(days=1)
    await ledger.grant("cus_a", 10_000, idempotency_key="more", expires_at=expires_at)
    await warm(ledger)


class TestProcessesSharingACustomer:
    async def test_each_writes_one_statement_per_batch(
        self,
        ledger: Ledger,
        other: Ledger,
        statements: list[str],
        wallet: Wallet,
        consistent: Check,
    ) -> None:
        await warm(other)
        statements.clear()

        for writer, amount in [(ledger, 10), (other, 20), (ledger, 30), (other, 5)]:
            hold = await writer.hold("cus_a", amount + 1)
            await writer.capture(hold.id, amount)

        assert len(statements) == 8 and not locked(statements)
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (35, 0)
        await consistent()

    async def test_the_cache_takes_the_balances_the_others_left(
        self, ledger: Ledger, other: Ledger, statements: list[str]
    ) -> None:
        await other.hold("cus_a", 40)
        await ledger.hold("cus_a", 10)  # decided over 100 free; its statement reads 50 left
        statements.clear()

        hold = await ledger.hold("cus_a", 10)

        assert hold.available_after_micros == 40
        assert not locked(statements)

    async def test_a_hold_the_cache_would_refuse_is_asked_of_the_wallet(
        self, ledger: Ledger, other: Ledger, statements: list[str], consistent: Check
    ) -> None:
        held = await other.hold("cus_a", 90)
        await ledger.hold("cus_a", 5)  # this cache now says 5 are free
        await other.void(held.id)  # 95 are
        statements.clear()

        hold = await ledger.hold("cus_a", 50)

        assert hold.amount == 50 and hold.available_after_micros == 45
        assert locked(statements)  # refused by the cache, granted by the wallet
        await consistent()

    @pytest.mark.usefixtures("no_pause")
    async def test_money_back_on_a_lot_this_process_never_read_makes_it_read_again(
        self,
        ledger: Ledger,
        other: Ledger,
        postgres_db: Database,
        clock: FrozenClock,
        statements: list[str],
        consistent: Check,
    ) -> None:
        emptied = await other.hold("cus_a", 100)  # the first lot is empty
        await grant_elsewhere(postgres_db, clock, "cus_a", 50)
        await ledger.hold("cus_a", 10)  # read again: the second lot only
        await other.void(emptied.id)  # the first lot has 100 again
        await ledger.hold("cus_a", 5)  # its statement answers a lot this cache lacks
        statements.clear()

        await ledger.hold("cus_a", 5)

        assert locked(statements)
        await consistent()


class TestAnotherWriter:
    async def test_a_stale_cache_cannot_overdraw(
        self,
        ledger: Ledger,
        other: Ledger,
        statements: list[str],
        row_counts: Counts,
        wallet: Wallet,
        consistent: Check,
    ) -> None:
        await other.hold("cus_a", 80)  # this ledger's cache still says 100 are free
        before = await row_counts()
        statements.clear()

        with pytest.raises(InsufficientCredit):
            await ledger.hold("cus_a", 50)

        assert statements[0].startswith("WITH escrows AS") and locked(statements[1:])
        assert await row_counts() == before
        assert (await wallet("cus_a")).held_micros == 80
        await consistent()

    async def test_the_general_way_sees_credit_granted_elsewhere(
        self,
        ledger: Ledger,
        postgres_db: Database,
        clock: FrozenClock,
        wallet: Wallet,
        consistent: Check,
    ) -> None:
        await grant_elsewhere(postgres_db, clock, "cus_a", 50)

        hold = await ledger.hold("cus_a", 120)  # answered once committed, the general way

        assert hold.amount == 120
        assert (await wallet("cus_a")).available_micros == 30
        await consistent()

    async def test_a_new_grant_moves_the_version(
        self, ledger: Ledger, postgres_db: Database, clock: FrozenClock
    ) -> None:
        version = await escrow_version(postgres_db)

        await grant_elsewhere(postgres_db, clock, "cus_a", 50)

        assert await escrow_version(postgres_db) == version + 1

    @pytest.mark.usefixtures("missed_once")
    async def test_a_contended_customer_runs_the_general_way_for_a_while(
        self, ledger: Ledger, statements: list[str], consistent: Check
    ) -> None:
        await ledger.hold("cus_a", 1)
        await ledger.hold("cus_a", 1)

        lock = "SELECT ledger_accounts.id, ledger_accounts.version"
        assert sum(s.startswith(lock) for s in statements) == 2  # both the general way
        await consistent()

    @pytest.mark.usefixtures("no_pause", "missed_once")  # no_pause first: the miss then pauses 0 s
    async def test_then_it_is_cached_again(
        self, ledger: Ledger, statements: list[str], consistent: Check
    ) -> None:
        await ledger.hold("cus_a", 1)

        assert len(statements) == 1 and statements[0].startswith("WITH escrows AS")
        await consistent()


class TestTheStatementChecksItself:
    async def test_a_guard_that_misses_writes_nothing(
        self,
        ledger: Ledger,
        postgres_db: Database,
        statements: list[str],
        row_counts: Counts,
    ) -> None:
        hold = await ledger.hold("cus_a", 30)
        # A writer that ignores the protocol settles the hold without touching the escrow
        # row, so the escrow's version still matches the cache.
        async with postgres_db.engine.begin() as conn:
            await conn.execute(
                text("UPDATE ledger_holds SET status = 'voided' WHERE id = :id"), {"id": hold.id}
            )
        before = await row_counts()
        version = await escrow_version(postgres_db)
        statements.clear()

        with pytest.raises(HoldNotOpen):
            await ledger.capture(hold.id, 30)

        assert statements[0].startswith("WITH escrows AS") and locked(statements[1:])
        assert await row_counts() == before
        assert await escrow_version(postgres_db) == version

    async def test_an_unknown_outcome_fails_the_ops_without_a_retry(
        self,
        ledger: Ledger,
        postgres_db: Database,
        statements: list[str],
        monkeypatch: pytest.MonkeyPatch,
        wallet: Wallet,
    ) -> None:
        lost = DBAPIError("WITH ...", {}, asyncpg.ConnectionDoesNotExistError("connection lost"))

        async def connection_lost(*args: Any) -> None:
            raise lost

        monkeypatch.setattr(cached_postgres, "write_alone", connection_lost)
        statements.clear()

        with pytest.raises(DBAPIError) as raised:
            await ledger.hold("cus_a", 30)

        assert raised.value is lost
        assert not locked(statements)  # not redone: it may have been written
        assert (await wallet("cus_a")).held_micros == 0


class TestAnswersAfterTheStatement:
    """A cached batch's ops are answered once its statement (its commit) has returned."""

    @pytest.mark.usefixtures("plenty")
    async def test_a_hold_waits_for_its_statement(
        self, ledger: Ledger, gate: Gate, postgres_db: Database, consistent: Check
    ) -> None:
        answer = asyncio.create_task(ledger.hold("cus_a", 10))

        await asyncio.wait_for(gate.reached.wait(), 5)
        await asyncio.sleep(0.05)
        assert not answer.done()
        gate.opened.set()
        hold = await asyncio.wait_for(answer, 5)
        assert await stored_hold(postgres_db, hold.id) == replace(hold, available_after_micros=None)
        await consistent()


class TestPipeline:
    """While a statement is in flight, the ops that arrive are applied over the accounts as it
    will leave them, into one next batch sent when it returns (`writer/pipeline_postgres.py`)."""

    @pytest.mark.usefixtures("plenty")
    async def test_holds_are_decided_while_a_statement_is_in_flight_and_sent_together(
        self,
        ledger: Ledger,
        gate: Gate,
        statements: list[str],
        wallet: Wallet,
        consistent: Check,
    ) -> None:
        statements.clear()
        first = asyncio.create_task(ledger.hold("cus_a", 10))
        await asyncio.wait_for(gate.reached.wait(), 5)

        meanwhile = [asyncio.create_task(ledger.hold("cus_a", amount)) for amount in (1, 2, 3)]
        await asyncio.sleep(0.05)

        assert not any(task.done() for task in [first, *meanwhile])
        gate.opened.set()
        await asyncio.wait_for(first, 5)
        answered = [await asyncio.wait_for(task, 5) for task in meanwhile]
        assert [hold.available_after_micros for hold in answered] == [10_089, 10_087, 10_084]
        assert len(statements) == 2 and not locked(statements)  # the first; the three
        balance = await wallet("cus_a")
        assert (balance.available_micros, balance.held_micros) == (10_084, 16)
        await consistent()

    @pytest.mark.usefixtures("plenty")
    async def test_the_next_batch_moves_with_what_the_statement_before_it_answered(
        self, ledger: Ledger, other: Ledger, gate: Gate, wallet: Wallet, consistent: Check
    ) -> None:
        first = asyncio.create_task(ledger.hold("cus_a", 10))
        await asyncio.wait_for(gate.reached.wait(), 5)
        following = asyncio.create_task(ledger.hold("cus_a", 5))
        await asyncio.sleep(0.05)
        await other.hold("cus_a", 40)  # the general way, before the first statement runs

        gate.opened.set()
        await asyncio.wait_for(ledger.capture((await first).id, 10), 5)  # after a later one
        hold = await asyncio.wait_for(ledger.hold("cus_a", 1), 5)

        assert (await following).available_after_micros == 10_085
        assert hold.available_after_micros == 10_044  # 10,100 - 10 - 5 - 40 - 1
        assert (await wallet("cus_a")).held_micros == 46
        await consistent()

    @pytest.fixture
    async def half_held(
        self, ledger: Ledger, postgres_db: Database, clock: FrozenClock
    ) -> AsyncIterator[tuple[Ledger, str]]:
        """Another writer, which runs the general way only, and the id of its hold of 50 that
        `ledger` has seen (its cache says 50 are free)."""
        database = Database(postgres_db.url)
        try:
            async with Ledger(database, clock=clock) as fresh:
                held = await fresh.hold("cus_a", 50)
            await warm(ledger)
            async with Ledger(database, clock=clock) as fresh:
                yield fresh, held.id
        finally:
            await database.dispose()

    async def test_a_hold_the_cache_refuses_meanwhile_is_asked_of_the_wallet_after_it(
        self,
        ledger: Ledger,
        half_held: tuple[Ledger, str],
        gate: Gate,
        statements: list[str],
        consistent: Check,
    ) -> None:
        fresh, held_id = half_held
        first = asyncio.create_task(ledger.hold("cus_a", 30))
        await asyncio.wait_for(gate.reached.wait(), 5)
        await fresh.void(held_id)  # the general way: 100 are free, before the first statement
        statements.clear()

        refused_here = asyncio.create_task(ledger.hold("cus_a", 40))  # 20 free, as cached
        await asyncio.sleep(0.05)
        assert not first.done() and not refused_here.done()  # behind the statement in flight
        gate.opened.set()

        assert (await asyncio.wait_for(first, 5)).available_after_micros == 20
        hold = await asyncio.wait_for(refused_here, 5)
        assert hold.amount == 40 and hold.available_after_micros == 30
        assert locked(statements)  # granted by the wallet, read under its lock
        await consistent()

    @pytest.mark.usefixtures("plenty")
    async def test_a_refused_statement_has_the_batch_applied_since_redone_after_it(
        self,
        ledger: Ledger,
        gate: Gate,
        postgres_db: Database,
        clock: FrozenClock,
        wallet: Wallet,
        consistent: Check,
    ) -> None:
        first = asyncio.create_task(ledger.hold("cus_a", 10))
        await asyncio.wait_for(gate.reached.wait(), 5)
        await grant_elsewhere(postgres_db, clock, "cus_a", 50)  # its statement's version misses
        following = asyncio.create_task(ledger.hold("cus_a", 20))
        await asyncio.sleep(0.05)

        gate.opened.set()

        held = await asyncio.wait_for(first, 5)
        assert (await asyncio.wait_for(ledger.capture(held.id, 10), 5)).captured_amount == 10
        later = await asyncio.wait_for(following, 5)
        captured = await asyncio.wait_for(ledger.capture(later.id, 20), 5)
        assert captured.captured_amount == 20
        assert (await wallet("cus_a")).available_micros == 10_120
        await consistent()

    @pytest.mark.usefixtures("warmed_only")
    async def test_an_unknown_outcome_fails_its_ops_and_redoes_the_batch_applied_since(
        self,
        ledger: Ledger,
        postgres_db: Database,
        monkeypatch: pytest.MonkeyPatch,
        statements: list[str],
    ) -> None:
        lost = DBAPIError("WITH ...", {}, asyncpg.ConnectionDoesNotExistError("connection lost"))
        gate = Gate()

        async def lost_once_opened(*args: Any) -> None:
            gate.reached.set()
            await gate.opened.wait()
            raise lost

        monkeypatch.setattr(cached_postgres, "write_alone", lost_once_opened)
        first = asyncio.create_task(ledger.hold("cus_a", 30))
        await asyncio.wait_for(gate.reached.wait(), 5)
        following = asyncio.create_task(ledger.hold("cus_a", 5))
        await asyncio.sleep(0.05)
        statements.clear()

        gate.opened.set()

        with pytest.raises(DBAPIError) as raised:
            await asyncio.wait_for(first, 5)
        assert raised.value is lost
        hold = await asyncio.wait_for(following, 5)
        assert await stored_hold(postgres_db, hold.id) == replace(hold, available_after_micros=None)
        assert locked(statements)  # redone the general way

    @pytest.fixture
    async def warmed_only(self, ledger: Ledger) -> None:
        await warm(ledger)


class TestBounded:
    async def test_the_least_recently_written_customer_is_read_again(
        self, postgres_db: Database, clock: FrozenClock, statements: list[str]
    ) -> None:
        async with Ledger(postgres_db, clock=clock, max_cached_customers=2) as ledger:
            for customer in ("cus_a", "cus_b", "cus_c"):
                await ledger.grant(customer, 100, idempotency_key="g")
            statements.clear()

            await ledger.hold("cus_c", 1)  # cached
            await ledger.hold("cus_b", 1)  # cached
            assert not locked(statements)
            await ledger.hold("cus_a", 1)  # dropped when cus_c came in
            assert locked(statements)
