"""Group-commit writer of usage events.

Callers `await record(events)`; one background task
takes everything queued so far (whole calls, up to `max_batch` events), writes it in ONE
transaction with `INSERT ... ON CONFLICT (customer_id, event_id) DO NOTHING RETURNING ...`,
commits, and only then answers each `record` with its own accepted/duplicate counts.
On SQLite the whole transaction is one call on the driver's thread (`storage.driver`): one
multi-row INSERT ... ON CONFLICT DO NOTHING, redone row by row when some rows were already
stored (see `_insert_on_driver`).
On PostgreSQL the INSERT is its own transaction (autocommit), sent on a connection the writer
keeps (`storage.driver.HeldConnection`).
While a batch is being written new calls queue up and share the next transaction, so the
commit rate of the store bounds batches, not events; an idle recorder writes a lone event at
once (no timer, no added latency).

Correctness under concurrency:
- within a batch, an id seen earlier (in queue order) is a duplicate without reaching SQL;
- across transactions and processes, the unique constraint decides: PostgreSQL makes a
  concurrent inserter of the same key wait for the first one's commit, then skip it;
- rows are inserted sorted by `(customer_id, event_id)`, so two processes' batches lock keys
  in the same order and cannot deadlock; a deadlock or serialization failure is retried anyway;
- one call's events always share one transaction; if a multi-call batch fails for a reason
  other than a transient conflict, each call is retried alone, so one caller's bad data never
  fails another caller;
- a call whose write fails because of the database (an error it answered, or a lost
  connection) fails with `MeteringUnavailable` (503, retry later): nothing of it is
  acknowledged, and a retry with the same ids is counted once;
- a database that does not answer (restarting, a connection cut) is retried for ~2 s on new
  connections; then `record` fails with `MeteringUnavailable` too (the API answers 503, the
  gateway retries: nothing acknowledged is lost).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import text
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import Clock
from tollhouse.metering.errors import MeteringUnavailable, RecorderClosed, UnknownMeter
from tollhouse.metering.models import UsageEvent
from tollhouse.metering.schemas import (
    CheckedUsageEvent,
    RecordableEvent,
    RecordResult,
    UsageEventIn,
)
from tollhouse.storage import Database
from tollhouse.storage.driver import (
    TRANSIENT_SQLSTATES,
    HeldConnection,
    datetime_to_db,
    driver_statement,
    rows_statement,
    run_transaction,
    sqlstate,
)
from tollhouse.storage.outage import is_unreachable

log = logging.getLogger("tollhouse.metering")

DEFAULT_MAX_BATCH = 2000
"""Most events one transaction takes (a single larger call still goes in whole)."""

MAX_ATTEMPTS = 3
"""Tries of a batch that met a deadlock or serialization failure."""
UNREACHABLE_BACKOFF_SECONDS = (0.05, 0.25, 0.5, 1.0)
"""Waits before each new try of a batch the database did not answer (~2 s in all, within
which a restarted server is back, and a `record` caller still answers promptly)."""

RETRY_AFTER_SECONDS = 1
"""What `MeteringUnavailable` tells a caller to wait before retrying a failed write."""

RecordListener = Callable[[str, int], None]
"""Told how many events ended how, as they do (`UsageRecorder.watch`): `written`, `duplicate`
(already recorded) or `failed` (its caller got the error, and may retry)."""


@dataclass(eq=False, slots=True)
class _Pending:
    """One `record` call waiting for its batch, with the `future` it awaits."""

    events: Sequence[RecordableEvent]
    future: asyncio.Future[RecordResult]
    finished: bool = False


@dataclass
class RecorderStats:
    """Counters since start, for metrics and tests."""

    batches: int = 0
    """Transactions committed."""
    accepted: int = 0
    """Events inserted."""
    duplicates: int = 0
    """Events skipped as already recorded."""
    failed: int = 0
    """Events whose call failed."""


class UsageRecorder:
    """Records usage events idempotently, many callers per transaction.

    `known_meters`: when given, an event naming another meter fails the whole call with
    `UnknownMeter` before anything is queued. `max_batch` caps the events of one transaction.

    The writer task starts on first use (or `start()`); `stop()` writes everything queued,
    then refuses new events with `RecorderClosed`.
    """

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        known_meters: Collection[str] | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.db = db
        self.clock = clock
        self.known_meters = frozenset(known_meters) if known_meters is not None else None
        self.max_batch = max_batch
        self.stats = RecorderStats()
        self._queue: deque[_Pending] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._queued = 0
        """Calls queued since start; `_finished` of them are written or failed (in order)."""
        self._finished = 0
        self._flushes: list[tuple[int, asyncio.Future[None]]] = []
        """`flush` callers: how many calls must be finished, and the future to resolve then."""
        self._held = HeldConnection(db.engine)
        """PostgreSQL: the writer's own connection (`storage.driver`)."""
        self._listeners: tuple[RecordListener, ...] = ()

    def watch(self, listener: RecordListener) -> None:
        """Call `listener(outcome, events)` as events end (`RecordListener`): after each
        commit, or failure. Runs on the writer's task: quick, never raising."""
        self._listeners = (*self._listeners, listener)

    def _tell(self, outcome: str, events: int) -> None:
        if events:
            for listener in self._listeners:
                listener(outcome, events)

    @property
    def pending(self) -> int:
        """Events queued and not yet being written."""
        return sum(len(item.events) for item in self._queue)

    async def start(self) -> None:
        """Start the writer task (idempotent; the first `record()` also starts it).

        Raises:
            RecorderClosed: `stop()` was called.
        """
        if self._closed:
            raise RecorderClosed("the usage recorder was stopped")
        self._ensure_started()

    def _ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="metering.record")

    async def stop(self) -> None:
        """Write every queued event, then stop the writer. Later calls raise `RecorderClosed`."""
        self._closed = True
        self._wakeup.set()
        if self._task is not None and not self._task.done():
            await self._task
        await self._held.release()
        # Anything still queued (the task never ran, or died) is failed, not lost silently.
        self._fail_all(self._queue, RecorderClosed("the usage recorder was stopped"))
        self._queue.clear()

    async def record(self, events: Sequence[RecordableEvent]) -> RecordResult:
        """Write `events` (together, in one transaction) and wait until they are committed.

        Returns the accepted and duplicate counts of THIS call. Cancelling the caller does not
        withdraw queued events. On SQLite (one pooled connection) do not hold a session open
        while awaiting this: the writer needs that connection.

        Raises:
            UnknownMeter: an event's meter is not in `known_meters` (nothing is written).
            RecorderClosed: `stop()` was called.
            MeteringUnavailable: the database failed the write (nothing of this call is
                written; retry with the same ids), its error as `__cause__`.
        """
        self._check(events)
        future: asyncio.Future[RecordResult] = asyncio.get_running_loop().create_future()
        if events:
            self._enqueue(_Pending(tuple(events), future))
        else:
            future.set_result(RecordResult(accepted=0, duplicates=0))
        return await future

    async def flush(self) -> None:
        """Wait until every event queued so far is written (or failed), whether or not its
        caller still waits (a cancelled caller's events are written). Events queued meanwhile
        are not waited for."""
        if self._finished < self._queued:
            done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._flushes.append((self._queued, done))
            await done

    def _check(self, events: Sequence[RecordableEvent]) -> None:
        if self._closed:
            raise RecorderClosed("the usage recorder was stopped")
        for event in events:
            if not isinstance(event, (UsageEventIn, CheckedUsageEvent)):
                raise TypeError(f"expected a usage event, got {type(event).__name__}")
            if self.known_meters is not None and event.meter not in self.known_meters:
                raise UnknownMeter(f"no meter named {event.meter!r}", meter=event.meter)

    def _enqueue(self, item: _Pending) -> None:
        self._queue.append(item)
        self._queued += 1
        self._ensure_started()
        self._wakeup.set()

    def _finish(self, item: _Pending, result: RecordResult | BaseException) -> None:
        """Answer `item` (once), then any `flush` that waited for it."""
        if item.finished:
            return
        item.finished = True
        future = item.future
        if isinstance(result, BaseException):
            self.stats.failed += len(item.events)
            self._tell("failed", len(item.events))
            if not future.done():
                future.set_exception(result)
        elif not future.done():
            future.set_result(result)
        self._finished += 1
        if self._flushes:
            waiting = []
            for target, done in self._flushes:
                if target > self._finished:
                    waiting.append((target, done))
                elif not done.done():
                    done.set_result(None)
            self._flushes = waiting

    async def _run(self) -> None:
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = self._take_batch()
            try:
                await self._write_isolated(batch)
            except asyncio.CancelledError:
                self._fail_all(batch, RecorderClosed("the usage recorder was cancelled"))
                self._fail_all(self._queue, RecorderClosed("the usage recorder was cancelled"))
                self._queue.clear()
                raise

    def _take_batch(self) -> list[_Pending]:
        batch = [self._queue.popleft()]
        size = len(batch[0].events)
        while self._queue and size + len(self._queue[0].events) <= self.max_batch:
            item = self._queue.popleft()
            batch.append(item)
            size += len(item.events)
        return batch

    async def _write_isolated(self, batch: list[_Pending]) -> None:
        """Write `batch`; if it fails and holds several calls, write each call alone. While
        the database does not answer, every call fails with `MeteringUnavailable`."""
        try:
            await self._write(batch)
        except Exception as exc:
            if len(batch) == 1 or is_unreachable(exc):
                self._fail_all(batch, _as_unavailable(exc))
                return
            log.warning("metering batch of %d calls failed (%r); retrying each", len(batch), exc)
            for item in batch:
                try:
                    await self._write([item])
                except Exception as item_exc:
                    self._fail_all([item], _as_unavailable(item_exc))

    async def _write(self, batch: list[_Pending]) -> None:
        """One transaction for `batch`; resolves its futures only after the commit.

        A deadlock or serialization failure is retried at once (`MAX_ATTEMPTS`); a database
        that does not answer (`storage.outage`: a connection a restart cut, the server
        starting) after `UNREACHABLE_BACKOFF_SECONDS` each, on a new connection. Retrying an
        insert whose outcome was unknown is safe: ids already stored are skipped (they are
        then counted as duplicates in the answer)."""
        transient = unreachable = 0
        while True:
            try:
                results = await self._insert(batch)
                break
            except Exception as exc:
                if sqlstate(exc) in TRANSIENT_SQLSTATES and transient < MAX_ATTEMPTS - 1:
                    transient += 1
                    log.info("metering batch retried after %s", sqlstate(exc))
                elif is_unreachable(exc) and unreachable < len(UNREACHABLE_BACKOFF_SECONDS):
                    await asyncio.sleep(UNREACHABLE_BACKOFF_SECONDS[unreachable])
                    unreachable += 1
                else:
                    raise
        self.stats.batches += 1
        for item, result in zip(batch, results, strict=True):
            self.stats.accepted += result.accepted
            self.stats.duplicates += result.duplicates
            self._tell("written", result.accepted)
            self._tell("duplicate", result.duplicates)
            self._finish(item, result)

    async def _insert(self, batch: list[_Pending]) -> list[RecordResult]:
        recorded_at = self.clock.now()
        first: dict[tuple[str, str], RecordableEvent] = {}
        for item in batch:
            for event in item.events:
                first.setdefault((event.customer_id, event.id), event)
        events = [first[pair] for pair in sorted(first)]
        if self.db.is_sqlite:
            inserted = await self._insert_on_driver(events, recorded_at)
        else:
            inserted = await _insert_rows(self._held, events, recorded_at)
        # Attribute each inserted pair to the first call (in queue order) that carried it.
        results: list[RecordResult] = []
        for item in batch:
            accepted = 0
            for event in item.events:
                pair = (event.customer_id, event.id)
                if pair in inserted:
                    inserted.discard(pair)
                    accepted += 1
            results.append(RecordResult(accepted=accepted, duplicates=len(item.events) - accepted))
        return results

    async def _insert_on_driver(
        self, events: list[RecordableEvent], recorded_at: datetime
    ) -> set[tuple[str, str]]:
        """SQLite: the rows in one multi-row INSERT, in ONE call on the driver's thread
        (`storage.driver`). When they inserted fewer rows than given (some events were
        already stored: a retried call), the transaction is rolled back and the rows are
        inserted one by one, each counted by its rowcount. Times are converted by the
        column's own bind processor, properties by orjson (they hold only validated scalars:
        no NaN, which orjson would write as null), each once per distinct value or object
        (the events of one call share both)."""
        to_db = datetime_to_db(self.db.engine.dialect)
        times: dict[datetime, Any] = {recorded_at: to_db(recorded_at)}
        params = []
        for event, properties in zip(events, _properties_json(events), strict=True):
            occurred_at = times.get(event.occurred_at)
            if occurred_at is None:
                occurred_at = times[event.occurred_at] = to_db(event.occurred_at)
            params.append(
                (
                    event.id,
                    event.customer_id,
                    event.meter,
                    event.value,
                    occurred_at,
                    times[recorded_at],
                    event.key_id,
                    event.model,
                    event.session_id,
                    event.upstream,
                    properties,
                )
            )

        statement = rows_statement(_SQLITE_INSERT_ROWS, params)

        def insert_all(connection: sqlite3.Connection) -> None:
            if connection.execute(statement.sql, statement.params).rowcount != len(params):
                raise _Duplicates  # rolled back; `insert_each` tells which

        def insert_each(connection: sqlite3.Connection) -> set[tuple[str, str]]:
            inserted: set[tuple[str, str]] = set()
            cursor = connection.cursor()
            for values in params:
                cursor.execute(_SQLITE_INSERT, values)
                if cursor.rowcount == 1:
                    inserted.add((values[1], values[0]))
            return inserted

        try:
            await run_transaction(self.db.engine, insert_all)
        except _Duplicates:
            return await run_transaction(self.db.engine, insert_each)
        return {(values[1], values[0]) for values in params}

    def _fail_all(self, items: Collection[_Pending], exc: BaseException) -> None:
        for item in items:
            self._finish(item, exc)


async def record_in_transaction(
    session: AsyncSession, event: RecordableEvent, *, recorded_at: datetime
) -> bool:
    """Add one usage event to the caller's transaction, for a fact decided in it (a metered
    session's seconds, written with its end): it commits or rolls back with the fact. A
    `(customer_id, id)` already stored is a duplicate and changes nothing. Returns whether
    it was inserted. The meter is the caller's to check (`UsageRecorder` checks its own)."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    result = await session.execute(
        insert(UsageEvent)
        .values(
            event_id=event.id,
            customer_id=event.customer_id,
            meter=event.meter,
            value=event.value,
            occurred_at=event.occurred_at,
            recorded_at=recorded_at,
            key_id=event.key_id,
            model=event.model,
            session_id=event.session_id,
            upstream=event.upstream,
            properties=dict(event.properties or {}),
        )
        .on_conflict_do_nothing(index_elements=["customer_id", "event_id"])
    )
    return getattr(result, "rowcount", 0) == 1


async def _insert_rows(
    held: HeldConnection, events: list[RecordableEvent], recorded_at: datetime
) -> set[tuple[str, str]]:
    """PostgreSQL: every event in ONE `INSERT ... SELECT FROM unnest(<one array per column>)
    ON CONFLICT DO NOTHING RETURNING`, its own transaction on the writer's connection; the
    `(customer_id, event_id)` inserted (only rows actually inserted come back). Rows go in the
    order given (sorted by the caller)."""
    if not events:
        return set()
    params = {
        "ids": [event.id for event in events],
        "customers": [event.customer_id for event in events],
        "meters": [event.meter for event in events],
        "values": [event.value for event in events],
        "occurred": [event.occurred_at for event in events],
        "recorded": recorded_at,
        "keys": [event.key_id for event in events],
        "models": [event.model for event in events],
        "sessions": [event.session_id for event in events],
        "upstreams": [event.upstream for event in events],
        "properties": _properties_json(events),
    }
    rows = await held.execute(_PG_DRIVER_INSERT, params)
    return {(row[0], row[1]) for row in rows}


_PG_INSERT = text(
    "INSERT INTO usage_events (event_id, customer_id, meter, value, occurred_at, recorded_at, "
    "key_id, model, session_id, upstream, properties) "
    "SELECT i, c, m, v, o, CAST(:recorded AS TIMESTAMPTZ), k, d, s, up, p FROM unnest("
    "CAST(:ids AS VARCHAR[]), CAST(:customers AS VARCHAR[]), CAST(:meters AS VARCHAR[]), "
    "CAST(:values AS BIGINT[]), CAST(:occurred AS TIMESTAMPTZ[]), CAST(:keys AS VARCHAR[]), "
    "CAST(:models AS VARCHAR[]), CAST(:sessions AS VARCHAR[]), CAST(:upstreams AS VARCHAR[]), "
    "CAST(:properties AS JSON[])) "
    "AS u(i, c, m, v, o, k, d, s, up, p) "
    "ON CONFLICT (customer_id, event_id) DO NOTHING RETURNING customer_id, event_id"
)
_PG_DRIVER_INSERT = driver_statement(_PG_INSERT)
"""`_PG_INSERT` for `HeldConnection`."""
_SQLITE_INSERT_ROWS = (
    "INSERT INTO usage_events (event_id, customer_id, meter, value, occurred_at, recorded_at, "
    "key_id, model, session_id, upstream, properties) {rows} "
    "ON CONFLICT (customer_id, event_id) DO NOTHING"
)
_SQLITE_INSERT = _SQLITE_INSERT_ROWS.format(rows="VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


def _as_unavailable(exc: Exception) -> Exception:
    """A failure of the database that a later try may not meet (an error it answered, such
    as a lock or a trigger's, a lost connection, an unreachable server) as
    `MeteringUnavailable`, which the API answers 503 with `Retry-After`. What no retry
    changes is raised as it is: a constraint or data error (the events themselves), a
    statement the database cannot run (`ProgrammingError`), anything but a database error."""
    if not is_unreachable(exc) and (
        isinstance(exc, (IntegrityError, DataError, ProgrammingError))
        or not isinstance(exc, (DBAPIError, OSError))
    ):
        return exc
    error = MeteringUnavailable(
        "usage events were not recorded: the database failed; retry them (same ids)",
        retry_after_seconds=RETRY_AFTER_SECONDS,
    )
    error.__cause__ = exc
    return error


class _Duplicates(Exception):
    """Some rows of a multi-row INSERT were already stored."""


def _properties_json(events: Sequence[RecordableEvent]) -> list[str]:
    """Each event's properties as JSON text, encoded once per distinct mapping (the events of
    one call share theirs)."""
    texts: dict[int, str] = {}
    encoded = []
    for event in events:
        text_of = texts.get(id(event.properties))
        if text_of is None:
            text_of = texts[id(event.properties)] = _json(event.properties)
        encoded.append(text_of)
    return encoded


def _json(properties: Mapping[str, Any]) -> str:
    try:
        return orjson.dumps(properties).decode()
    except TypeError:  # an integer beyond 64 bits
        return json.dumps(dict(properties))
