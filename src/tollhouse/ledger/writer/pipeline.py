"""What the two pipelines of cached batches share (`pipeline_sqlite`, `pipeline_postgres`).

A pipeline applies the batches the caches can serve on the event loop (`take`) and writes them
in order on its own task, so the writer decides the next batch while earlier ones are being
written. When a write fails, the batches to redo are handed back in order (`take_failed`),
after the writer `drain`s the pipeline; `on_failure` wakes the writer for that. `on_commit`
is told of each transaction written: its ops, and the seconds its write took.
"""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from tollhouse.ledger.writer.ops import Op, Outcome, resolve
from tollhouse.ledger.writer.state import HoldCache


@dataclass(slots=True)
class Applied:
    """A batch applied over the caches: its ops and their outcomes, answered once written."""

    ops: list[Op]
    outcomes: list[Outcome]

    def resolve(self) -> None:
        """Answer every op whose caller still waits (`ops.resolve`)."""
        for op, (ok, value) in zip(self.ops, self.outcomes, strict=True):
            resolve(op, ok, value)


class Pipeline(ABC):
    """The writer's side of a pipeline: `take`, `failed`, `drain`, `take_failed`, counters.
    Subclasses apply batches in `take`, write them in `_write_all` (run by `_start`'s task
    until nothing is left to write) and fill `_failed` when a write fails."""

    def __init__(
        self,
        *,
        hold_cache: HoldCache,
        known_accounts: set[str],
        hold_ttl: timedelta,
        on_failure: Callable[[], None],
        on_commit: Callable[[int, float], None],
    ) -> None:
        self._hold_cache = hold_cache
        self._known_accounts = known_accounts
        self._hold_ttl = hold_ttl
        self._on_failure = on_failure
        self._on_commit = on_commit
        self._failed: list[list[Op]] = []
        self._task: asyncio.Task[None] | None = None
        self.transactions = 0
        """Transactions (statements) written so far."""
        self.ops = 0
        """Operations carried by them."""

    @property
    def failed(self) -> bool:
        """A write failed: `take_failed` before anything else is written."""
        return bool(self._failed)

    @abstractmethod
    def take(self, ops: list[Op], now: datetime) -> list[Op]:
        """Apply `ops` over the caches at `now`, to be written soon; returns the ops left to the
        general way (all of them when the caches cannot serve them)."""

    async def drain(self) -> None:
        """Wait until every taken batch is written (or failed)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    def take_failed(self) -> list[list[Op]]:
        """The ops of the batches to redo the general way, in order (call after `drain`)."""
        failed, self._failed = self._failed, []
        return failed

    def _committed(self, ops: int, began: float) -> None:
        """Count a transaction of `ops` written since `began` (`time.perf_counter()`)."""
        self.transactions += 1
        self.ops += ops
        self._on_commit(ops, time.perf_counter() - began)

    def _start(self) -> None:
        """Start the writing task unless it runs."""
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"ledger.{type(self).__name__}")

    async def _run(self) -> None:
        try:
            await self._write_all()
        finally:
            self._task = None

    @abstractmethod
    async def _write_all(self) -> None:
        """Write what was taken, in order, until nothing is left or a write failed."""
