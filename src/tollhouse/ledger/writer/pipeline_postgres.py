"""PostgreSQL: a pipelined writer for cached batches (`writer/cached_postgres.py`).

One statement is in flight at a time, on the writer's held connection, in the order the
batches were applied. While it is, the ops that arrive are applied over the cached accounts as
that statement will leave them, into ONE next batch that grows until the statement returns,
and is then sent. Every op is answered when its own statement has returned (its commit).

How the cache follows: when a batch is sent, its accounts are marked as stored (their balances
are the start of the next batch's deltas) and its holds are cached, so the next batch can
capture them. When its statement returns, the balances it answered replace what this process
expected, and the difference (other processes' work) moves the next batch's accounts too
(`PostgresAccountCache.remember`).

Failure: the next batch was decided over the sent one's outcome. When a statement is refused
(a guard missed: nothing of it was written), its customers and the next batch's are dropped
from the caches and both batches are handed back to the writer, in order (`take_failed`), to
be redone the general way. When its outcome is unknown (the connection failed), its ops fail
with the error, as a failed COMMIT's do, and the next batch is redone.
A hold the cache refuses (`InsufficientCredit`) is left to the general way alone, which reads
the wallet under its lock once the batches before it are written: other processes may have
released credit since.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from tollhouse.ledger.errors import InsufficientCredit
from tollhouse.ledger.writer import cached_postgres
from tollhouse.ledger.writer.apply import apply_all
from tollhouse.ledger.writer.cached import extend
from tollhouse.ledger.writer.cached_postgres import PostgresAccountCache, escrows
from tollhouse.ledger.writer.flush import collect
from tollhouse.ledger.writer.ops import Op, resolve
from tollhouse.ledger.writer.pipeline import Applied, Pipeline
from tollhouse.ledger.writer.state import BatchState, HoldCache, committed
from tollhouse.storage.driver import (
    TRANSIENT_SQLSTATES,
    HeldConnection,
    refused_by_server,
    sqlstate,
)

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class _Batch(Applied):
    """`Applied`, with the state its ops were applied to (it grows while it is the next)."""

    state: BatchState


class PostgresPipeline(Pipeline):
    """Writes the taken batches in order, one statement at a time (`pipeline.Pipeline`); the
    batch taken while a statement is in flight grows until it returns."""

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        connection: HeldConnection,
        cache: PostgresAccountCache,
        hold_cache: HoldCache,
        known_accounts: set[str],
        hold_ttl: timedelta,
        on_failure: Callable[[], None],
        on_commit: Callable[[int, float], None],
    ) -> None:
        super().__init__(
            hold_cache=hold_cache,
            known_accounts=known_accounts,
            hold_ttl=hold_ttl,
            on_failure=on_failure,
            on_commit=on_commit,
        )
        self._engine = engine
        self._connection = connection
        self._cache = cache
        self._next: _Batch | None = None
        """The batch applied since the statement in flight was sent (None: none yet)."""

    def take(self, ops: list[Op], now: datetime) -> list[Op]:
        """`Pipeline.take`, into the batch sent next; the holds the cache refuses are left to
        the general way too."""
        assert not self._failed, "take_failed first"
        batch = self._next if self._next is not None else _Batch([], [], BatchState(now))
        state = batch.state
        state.now = now
        cache = self._cache
        if not extend(
            state,
            ops,
            customers=cache.customers,
            hold_cache=self._hold_cache,
            known_accounts=self._known_accounts,
        ):
            return ops
        needed = escrows(state, ops)
        if not needed.issubset(cache.versions):
            return ops
        state.versions.update((escrow_id, cache.versions[escrow_id]) for escrow_id in needed)
        try:
            outcomes = apply_all(state, ops, self._hold_ttl)
        except Exception:  # a bug: the batch's accounts may keep partial changes
            logger.exception("applying a cached ledger batch failed; redoing it the general way")
            self._next = None
            self._forget(state)
            self._failed.append(batch.ops + ops)
            self._on_failure()
            return []
        left: list[Op] = []
        for op, outcome in zip(ops, outcomes, strict=True):
            ok, value = outcome
            if not ok and isinstance(value, InsufficientCredit):
                left.append(op)  # rolled back: the batch is as if it never came
            else:
                batch.ops.append(op)
                batch.outcomes.append(outcome)
        if batch.ops:
            self._next = batch
            self._start()
        return left

    async def _write_all(self) -> None:
        while self._next is not None and not self._failed:
            batch, self._next = self._next, None
            await self._send(batch)

    async def _send(self, batch: _Batch) -> None:
        state = batch.state
        changes = collect(state)
        assert not changes.new_accounts and not changes.meta, "holds, captures, voids only"
        for account in state.accounts.values():
            committed(account)  # the next batch's deltas start here
        self._hold_cache.remember(state.holds.values())
        began = time.perf_counter()
        try:
            balances = await cached_postgres.send(
                self._engine, self._connection, changes, state.now
            )
        except BaseException as exc:
            self._fail(batch, exc)
            if not isinstance(exc, Exception):
                raise
            return
        self._cache.remember(state, balances)
        self._committed(len(batch.ops), began)
        batch.resolve()

    def _fail(self, batch: _Batch, exc: BaseException) -> None:
        """`batch`'s statement raised: drop what the caches know of it and of the next batch;
        hand them back to be redone (the next one always; `batch` when nothing of it was
        written), or fail `batch`'s ops with the error (its outcome is unknown)."""
        following, self._next = self._next, None
        contended = sqlstate(exc) in TRANSIENT_SQLSTATES
        self._forget(batch.state, contended=contended)
        redo: list[list[Op]] = []
        if following is not None:
            self._forget(following.state, contended=contended)
            redo.append(following.ops)
        if isinstance(exc, Exception) and refused_by_server(exc):
            logger.log(
                logging.INFO if contended else logging.WARNING,
                "cached ledger statement refused (%r); redoing it the general way",
                exc,
            )
            redo.insert(0, batch.ops)
        else:
            logger.error("ledger statement failed (%r); its ops fail with the error", exc)
            for op in batch.ops:
                resolve(op, False, exc)
        self._failed[:0] = redo
        if redo:
            self._on_failure()

    def _forget(self, state: BatchState, *, contended: bool = False) -> None:
        self._cache.forget(state.by_customer, contended=contended)
        self._hold_cache.forget(state.holds)
