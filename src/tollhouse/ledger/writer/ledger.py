"""`Ledger`: the one writer of a process. Group commit over a queue of operations.

Each call validates its arguments (`InvalidInput` before anything is queued), enqueues an op with
a future and awaits it. One background task takes everything queued (up to `max_batch`), runs it
in ONE transaction (`batch.run_batch`; the pipelines below may write several such batches in
one), commits, then resolves the futures: an answer is durable before the caller gets it,
whatever the store and however many processes write it. There is no tick: an idle
ledger commits a lone op at once; under load ops pile up while a batch runs and the next
batch takes them all, so commits per second stay roughly constant while ops per commit grow.

Failures: a business error (insufficient credit, hold not open, ...) fails its op alone. Any other
error fails the batch's transaction; its ops are then retried one per transaction (twice more on
integrity or deadlock errors, e.g. two processes racing on one idempotency key), so one bad op
cannot fail its neighbours. If COMMIT itself fails the outcome is unknown and the ops fail with
that error (no blind retry of a possibly committed batch).

What a caller sees when the database fails (README "Faults"): a hold is answered only after
its commit, so an op that failed was never answered. The API turns the error into 503
`database-unavailable` (`storage.outage`): nothing held, the call not forwarded. Only when the
connection broke during the statement or the COMMIT is the outcome unknown: the hold may
have been written without being answered. It is then found again by its idempotency key (a
retried `/v1/authorize` with the same key answers that hold), or expires after
`TOLLHOUSE_HOLD_TIMEOUT_SECONDS` and is voided by the sweeper: credits are reserved for a
while, never charged. A capture or void that met such a failure is retried by the gateway
until written (`gateway.settle.until_written`; both are idempotent).

An op whose caller is cancelled before its batch starts is dropped; once started it completes.
Several processes may each run a `Ledger` on one PostgreSQL database (row locks, see `load`);
on SQLite run one per database (one connection serialises everything). Batches of holds,
captures and voids are applied on the event loop over accounts cached across batches and
written by a pipeline, the next batch decided while the previous one is written: on SQLite
(`cached`, `pipeline_sqlite`) by a group commit of every batch applied meanwhile; on
PostgreSQL (`cached_postgres`, `pipeline_postgres`) in one autocommit statement per batch
that checks the customers' escrow versions and balances itself, also when several processes
serve one customer. Everything else, and any batch the caches cannot serve, runs the general
way once every batch before it is written.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Self, cast

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from tollhouse.clock import Clock
from tollhouse.ids import base62, new_id
from tollhouse.ledger import validate
from tollhouse.ledger.errors import LedgerClosed
from tollhouse.ledger.models import AccountKind, HoldStatus, accounts_table, holds_table
from tollhouse.ledger.schemas import GrantView, HoldView, ReversalView, SweepResult
from tollhouse.ledger.writer.batch import run_batch
from tollhouse.ledger.writer.cached_postgres import PostgresAccountCache
from tollhouse.ledger.writer.ops import (
    CaptureOp,
    GrantOp,
    HoldOp,
    Op,
    Outcome,
    OverdraftOp,
    ReverseOp,
    RevokeOp,
    SweepCustomerOp,
    VoidOp,
    resolve,
)
from tollhouse.ledger.writer.pipeline_postgres import PostgresPipeline
from tollhouse.ledger.writer.pipeline_sqlite import SqlitePipeline
from tollhouse.ledger.writer.state import (
    MAX_CACHED_CUSTOMERS,
    AccountCache,
    HoldCache,
    StaleState,
)
from tollhouse.storage import Database
from tollhouse.storage.driver import (
    TRANSIENT_SQLSTATES,
    CommitError,
    HeldConnection,
    datetime_to_db,
    sqlstate,
)

logger = logging.getLogger(__name__)

DEFAULT_HOLD_TTL_SECONDS = 3600.0
_SINGLE_OP_ATTEMPTS = 3

HoldListener = Callable[[HoldView], None]
"""Told of every new hold's answer (`Ledger.watch_holds`), and of every capture's and void's
that settled a hold (`Ledger.watch_settlements`)."""
CommitListener = Callable[[int, float], None]
"""Told of every transaction the writer commits: its operations, and the seconds it took
(`Ledger.watch_commits`)."""


def _is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, IntegrityError | StaleState):
        return True
    if isinstance(exc, DBAPIError):
        if sqlstate(exc) in TRANSIENT_SQLSTATES:
            return True
        # SQLite shared by another process: its write lock was busy.
        return isinstance(exc, OperationalError) and "locked" in str(exc.orig).lower()
    return False


class Ledger:
    """The credit ledger's writer: grants, holds, captures, voids, revokes, overdraft, sweep.

    Create one per process and database; `await start()` (or use `async with`), and `await
    stop()` on shutdown (it drains the queue). Reads go through `tollhouse.ledger.service`.

    `max_batch` bounds the ops taken at once (a pipeline may write several takes together);
    `hold_ttl_seconds` is a hold's default life; `max_cached_customers` bounds the customers
    whose accounts the writer keeps in memory between batches (~0.7 KB for one with an escrow
    and one lot; the others are read from the database by their next batch).
    """

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        max_batch: int = 512,
        hold_ttl_seconds: float = DEFAULT_HOLD_TTL_SECONDS,
        max_cached_customers: int = MAX_CACHED_CUSTOMERS,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self._db = db
        self._clock = clock
        self._max_batch = max_batch
        self._hold_ttl = timedelta(seconds=hold_ttl_seconds)
        self._pending: deque[Op] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._known_accounts: set[str] = set()
        self._hold_cache = HoldCache()
        self._accounts: AccountCache | None = None
        self._postgres_cache: PostgresAccountCache | None = None
        self._held = HeldConnection(db.engine)
        self._pipeline: SqlitePipeline | PostgresPipeline | None = None
        if db.engine.dialect.name == "postgresql":
            self._postgres_cache = PostgresAccountCache(max_cached_customers)
            self._pipeline = PostgresPipeline(
                db.engine,
                connection=self._held,
                cache=self._postgres_cache,
                hold_cache=self._hold_cache,
                known_accounts=self._known_accounts,
                hold_ttl=self._hold_ttl,
                on_failure=self._wakeup.set,
                on_commit=self._committed,
            )
        if db.is_sqlite:
            self._accounts = AccountCache(max_cached_customers)
            self._pipeline = SqlitePipeline(
                db.engine,
                accounts=self._accounts,
                hold_cache=self._hold_cache,
                known_accounts=self._known_accounts,
                hold_ttl=self._hold_ttl,
                to_db=datetime_to_db(db.engine.dialect),
                on_failure=self._wakeup.set,
                on_commit=self._committed,
            )
        self._batches = 0
        self._ops = 0
        self._hold_listeners: tuple[HoldListener, ...] = ()
        self._settlement_listeners: tuple[HoldListener, ...] = ()
        self._commit_listeners: tuple[CommitListener, ...] = ()

    @property
    def batches(self) -> int:
        """Transactions committed so far (for metrics and tests)."""
        return self._batches + (self._pipeline.transactions if self._pipeline else 0)

    @property
    def ops(self) -> int:
        """Operations carried by those transactions."""
        return self._ops + (self._pipeline.ops if self._pipeline else 0)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Start the writer task (idempotent). Calls start it lazily too."""
        if self._closed:
            raise LedgerClosed("the ledger was stopped")
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="ledger.writer")

    async def stop(self) -> None:
        """Refuse new ops, finish every queued one, then end the writer task."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._held.release()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def watch_holds(self, listener: HoldListener) -> None:
        """Call `listener(view)` with the answer to every new hold (not replays), carrying
        `available_after_micros`, before the caller gets it, after the listeners added before
        it. A listener runs on the caller's task: it must be quick and never raise (it is how
        a balance watcher, such as auto top-up or credit alerts, sees a wallet cross a
        threshold without reading the database)."""
        self._hold_listeners = (*self._hold_listeners, listener)

    def unwatch_holds(self, listener: HoldListener) -> None:
        """Stop calling `listener` (added by `watch_holds`)."""
        self._hold_listeners = tuple(x for x in self._hold_listeners if x != listener)

    def watch_settlements(self, listener: HoldListener) -> None:
        """Call `listener(view)` with the answer to every capture and void that settled a
        hold (not replays: `view.status` says which), before the caller gets it; quick and
        never raising, as `watch_holds`' listeners. Holds the sweep expires are not told."""
        self._settlement_listeners = (*self._settlement_listeners, listener)

    def watch_commits(self, listener: CommitListener) -> None:
        """Call `listener(ops, seconds)` after every transaction this writer commits (a
        pipeline's statement included): the operations it carried, and the seconds from its
        first write to its commit. Runs on the writer's task: quick, never raising."""
        self._commit_listeners = (*self._commit_listeners, listener)

    # -- operations ----------------------------------------------------------------------

    async def grant(
        self,
        customer_id: str,
        amount: int,
        *,
        idempotency_key: str,
        expires_at: datetime | None = None,
        priority: int = 0,
        source: str = "manual",
        description: str = "",
        currency: str = "usd",
        paid: bool = False,
    ) -> GrantView:
        """Give `amount` micros (> 0) as a new lot (issuance -> lot; `paid`: payments -> lot,
        credits a customer paid for, with an entry of kind `payment`).

        The same `idempotency_key` for the customer with the same arguments returns the first
        grant (`replayed`; no double credit).
        A new lot first repays captured overdraft debt. Lots with an `expires_at` are spent
        before lots without; then lower `priority` first; then older first.

        Raises:
            InvalidInput: bad amount, currency, key, expiry (must be future), priority, source.
            IdempotencyKeyReused: the key was used for a grant with other arguments (amount,
                currency, expiry, priority, source or description: `fields` names them).
        """
        op = GrantOp(
            future=self._future(),
            customer_id=validate.identifier(customer_id, "customer_id"),
            amount=validate.amount(amount),
            idempotency_key=cast(str, validate.idempotency_key(idempotency_key, required=True)),
            currency=validate.currency(currency),
            expires_at=validate.future_time(expires_at, "expires_at", self._clock.now()),
            priority=validate.priority(priority),
            source=validate.source(source),
            description=validate.text(description, "description"),
            paid=paid,
        )
        return cast(GrantView, await self._submit(op))

    async def hold(
        self,
        customer_id: str,
        amount: int,
        *,
        idempotency_key: str | None = None,
        currency: str = "usd",
        expires_at: datetime | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> HoldView:
        """Reserve `amount` micros (> 0): live lots in spend order, then the overdraft line.

        The same `idempotency_key` for the customer returns the first hold (`replayed`). `expires_at`
        defaults to now + `hold_ttl_seconds`; `sweep` voids open holds past it. The hold is
        answered once it is committed.

        Raises:
            InvalidInput: bad amount, currency, key, expiry or metadata.
            InsufficientCredit: lots + unused overdraft < amount (nothing is stored).
            IdempotencyKeyReused: the key was used for a hold of another amount or currency
                (`fields` names them).
        """
        op = HoldOp(
            future=self._future(),
            hold_id=new_id("hold"),
            customer_id=validate.identifier(customer_id, "customer_id"),
            amount=validate.amount(amount),
            currency=validate.currency(currency),
            idempotency_key=validate.idempotency_key(idempotency_key, required=False),
            expires_at=validate.future_time(expires_at, "expires_at", self._clock.now()),
            metadata=validate.metadata(metadata),
        )
        view = cast(HoldView, await self._submit(op))
        if not view.replayed:
            for listener in self._hold_listeners:
                listener(view)
        return view

    async def capture(
        self, hold_id: str, amount: int, *, customer_id: str | None = None
    ) -> HoldView:
        """Settle a hold at `amount` micros (0 <= amount <= hold.amount); release the rest.

        Captured amounts consume the hold's allocations in draw order; the rest goes back to
        the same lots. Capturing a captured hold at the same amount returns it unchanged.

        Raises:
            InvalidInput: amount not an int >= 0.
            HoldNotFound: unknown id, or the hold belongs to another `customer_id`.
            HoldNotOpen: voided, expired (also open past `expires_at`), or captured at
                another amount.
            CaptureExceedsHold: amount > hold.amount.
        """
        op = CaptureOp(
            future=self._future(),
            hold_id=validate.identifier(hold_id, "hold_id"),
            amount=validate.amount(amount, allow_zero=True),
            customer_id=validate.optional_identifier(customer_id, "customer_id"),
        )
        return self._settled(cast(HoldView, await self._submit(op)))

    async def void(self, hold_id: str, *, customer_id: str | None = None) -> HoldView:
        """Release a whole hold back to its lots. Voided or expired holds are returned as is.

        Raises:
            HoldNotFound: unknown id, or another customer's hold.
            HoldNotOpen: the hold was captured.
        """
        op = VoidOp(
            future=self._future(),
            hold_id=validate.identifier(hold_id, "hold_id"),
            customer_id=validate.optional_identifier(customer_id, "customer_id"),
        )
        return self._settled(cast(HoldView, await self._submit(op)))

    def _settled(self, view: HoldView) -> HoldView:
        if not view.replayed:
            for listener in self._settlement_listeners:
                listener(view)
        return view

    async def revoke_grant(self, grant_id: str, *, customer_id: str | None = None) -> GrantView:
        """Send the lot's unheld rest back to issuance; it is never spent again (idempotent).

        Money an open hold took from the lot goes back to issuance when that hold is
        captured (the released part) or voided.

        Raises:
            GrantNotFound: unknown id, or another customer's grant.
        """
        op = RevokeOp(
            future=self._future(),
            grant_id=validate.identifier(grant_id, "grant_id"),
            customer_id=validate.optional_identifier(customer_id, "customer_id"),
        )
        return cast(GrantView, await self._submit(op))

    async def reverse_grant(
        self,
        grant_id: str,
        amount: int,
        *,
        idempotency_key: str,
        customer_id: str | None = None,
        description: str = "",
    ) -> ReversalView:
        """Take up to `amount` micros (> 0) of a lot's rest back to the account that funded it
        (payments for a paid lot, else issuance), as one transfer of kind `refund`: what a
        refund reverses. Never more than the lot holds now: credits spent, held by open holds,
        expired or revoked stay where they went (`reversed_micros` says what was taken).

        Idempotent by `idempotency_key` per lot: the transfer's id is derived from both, and
        a replay answers the first reversal (`replayed`) and moves nothing more.

        Raises:
            InvalidInput: bad amount, key or description.
            GrantNotFound: unknown id, or another customer's grant.
        """
        grant_id = validate.identifier(grant_id, "grant_id")
        key = cast(str, validate.idempotency_key(idempotency_key, required=True))
        op = ReverseOp(
            future=self._future(),
            grant_id=grant_id,
            amount=validate.amount(amount),
            transfer_id=_reversal_transfer_id(grant_id, key),
            customer_id=validate.optional_identifier(customer_id, "customer_id"),
            description=validate.text(description, "description"),
        )
        return cast(ReversalView, await self._submit(op))

    async def set_overdraft_limit(
        self, customer_id: str, limit_micros: int, *, currency: str = "usd"
    ) -> int:
        """Let holds take the wallet down to `-limit_micros` (0 = no overdraft). Returns it.

        Lowering the limit below what is already drawn keeps the existing debt; it only stops
        new draws. New grants repay captured debt first.
        """
        op = OverdraftOp(
            future=self._future(),
            customer_id=validate.identifier(customer_id, "customer_id"),
            limit=validate.amount(limit_micros, "limit_micros", allow_zero=True),
            currency=validate.currency(currency),
        )
        return cast(int, await self._submit(op))

    async def sweep(self, now: datetime | None = None) -> SweepResult:
        """Void open holds past `expires_at` (status `expired`), then move the rest of lots
        past their expiry to the expired account.

        Idempotent: a second sweep at the same `now` does nothing. One op per customer and
        currency, batched like any other.
        """
        at = validate.aware_time(now, "now") if now is not None else self._clock.now()
        pairs = await self._sweep_candidates(at)
        ops = [
            SweepCustomerOp(future=self._future(), customer_id=cid, currency=cur, now=at)
            for cid, cur in sorted(pairs)
        ]
        results = await asyncio.gather(*(self._submit(op) for op in ops))
        total = SweepResult()
        for r in results:
            assert isinstance(r, SweepResult)
            total = SweepResult(
                expired_grants=total.expired_grants + r.expired_grants,
                expired_micros=total.expired_micros + r.expired_micros,
                expired_holds=total.expired_holds + r.expired_holds,
            )
        return total

    async def _sweep_candidates(self, now: datetime) -> set[tuple[str, str]]:
        a, h = accounts_table.c, holds_table.c
        # Revoked lots never keep money (releases into them go straight back to issuance).
        lots = select(a.customer_id, a.currency).where(
            a.expires_at <= now, a.balance > 0, a.kind == AccountKind.GRANT.value
        )
        holds = select(h.customer_id, h.currency).where(
            h.status == HoldStatus.OPEN.value, h.expires_at <= now
        )
        async with self._db.engine.connect() as conn:
            rows = list(await conn.execute(lots.union(holds)))
        return {(row[0], row[1]) for row in rows}

    # -- queue and writer ----------------------------------------------------------------

    def _future(self) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().create_future()

    async def _submit(self, op: Op) -> Any:
        if self._closed:
            raise LedgerClosed("the ledger was stopped")
        if self._task is None:
            await self.start()
        self._pending.append(op)
        self._wakeup.set()
        return await op.future

    async def _run(self) -> None:
        pending = self._pending
        while True:
            if self._pipeline is not None and self._pipeline.failed:
                await self._redo_failed()
                continue
            if not pending:
                if self._closed:
                    await self._redo_failed()
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch: list[Op] = []
            while pending and len(batch) < self._max_batch:
                op = pending.popleft()
                if not op.future.done():  # cancelled callers withdraw their op
                    batch.append(op)
            if not batch:
                continue
            left = self._pipeline.take(batch, self._clock.now()) if self._pipeline else batch
            if left:
                await self._redo_failed()  # everything before them is written first
                await self._execute_logged(left)

    async def _redo_failed(self) -> None:
        """Wait for the pipeline's writes; redo the batches of a failed one, in order."""
        if self._pipeline is None:
            return
        await self._pipeline.drain()
        for ops in self._pipeline.take_failed():
            await self._execute_logged(ops)

    async def _execute_logged(self, ops: list[Op]) -> None:
        """`_execute`, failing `ops` with any error it raises (logged): the writer never dies."""
        try:
            await self._execute(ops)
        except Exception as exc:
            logger.exception("ledger writer failed a batch")
            for op in ops:
                resolve(op, False, exc)

    async def _run_batch(self, ops: list[Op]) -> list[Outcome]:
        return await run_batch(
            self._db.engine,
            ops,
            now=self._clock.now(),
            hold_ttl=self._hold_ttl,
            known_accounts=self._known_accounts,
            hold_cache=self._hold_cache,
            accounts=self._accounts,
            postgres_cache=self._postgres_cache,
        )

    async def _execute(self, batch: list[Op]) -> None:
        began = time.perf_counter()
        try:
            outcomes = await self._run_batch(batch)
        except CommitError as failed:
            for op in batch:
                resolve(op, False, failed.cause)
            return
        except Exception as exc:
            if len(batch) > 1:
                logger.warning("ledger batch of %d failed (%r); retrying op by op", len(batch), exc)
                for op in batch:
                    await self._execute_alone(op)
            else:
                await self._execute_alone(batch[0], first_error=exc)
            return
        self._batches += 1
        self._ops += len(batch)
        self._committed(len(batch), time.perf_counter() - began)
        for op, (ok, value) in zip(batch, outcomes, strict=True):
            resolve(op, ok, value)

    def _committed(self, ops: int, seconds: float) -> None:
        for listener in self._commit_listeners:
            listener(ops, seconds)

    async def _execute_alone(self, op: Op, first_error: BaseException | None = None) -> None:
        attempts = 0 if first_error is None else 1
        error = first_error
        while attempts < _SINGLE_OP_ATTEMPTS and (error is None or _is_retryable(error)):
            attempts += 1
            began = time.perf_counter()
            try:
                outcomes = await self._run_batch([op])
            except CommitError as failed:
                resolve(op, False, failed.cause)
                return
            except Exception as exc:
                error = exc
                continue
            self._batches += 1
            self._ops += 1
            self._committed(1, time.perf_counter() - began)
            ok, value = outcomes[0]
            resolve(op, ok, value)
            return
        assert error is not None
        resolve(op, False, error)


def _reversal_transfer_id(grant_id: str, key: str) -> str:
    """`tr_<22 base62 of blake2b(grant, key)>`: one reversal per lot and key."""
    digest = hashlib.blake2b(f"reverse\x1f{grant_id}\x1f{key}".encode(), digest_size=17).digest()
    return "tr_" + base62(int.from_bytes(digest, "big") % 62**22, 22)
