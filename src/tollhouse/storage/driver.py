"""SQLite: run a whole transaction on the driver's own thread, in one hop.

aiosqlite runs every call on one worker thread; SQLAlchemy's async layer makes one round trip
to it per statement, fetch, BEGIN and COMMIT, and each costs far more (GIL hand-offs, a wake-up
of the event loop) than SQLite's own work on small rows. The group-commit writers (ledger,
metering) write a whole batch with ONE call instead: `run_transaction` checks the pooled
connection out (so nothing else uses it meanwhile), then runs `work(connection)` between
`BEGIN IMMEDIATE` and `COMMIT` on the driver's thread.

`work` should be a handful of statements, each carrying many rows (`rows_statements`), with
its parameters built beforehand on the event loop. The sqlite3 module lets go of the GIL
around every step of a statement and must take it back afterwards; while the event loop is
busy, taking it back waits for the loop to yield it (up to `sys.getswitchinterval()`), so a
thread that ran one small statement per row spent most of a batch waiting (a GIL convoy),
and delayed every hold and usage write behind it. A few multi-row statements wait a few
times per batch, and SQLite's own work (B-trees, the WAL's fsync at COMMIT) then runs on
the other core while the event loop serves requests.

Those writers take turns, first come first served (`_turns`): the pool's queue lets a task
that asks again at once take the connection back before a waiting one wakes up, so a busy
ledger would starve the usage recorder, whose backlog of settlements then grows without
bound (and with it the heap, and the pauses of Python's full garbage collections).
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from tollhouse.storage.base import UTCDateTime

T = TypeVar("T")

_turns: weakref.WeakKeyDictionary[AsyncEngine, asyncio.Lock] = weakref.WeakKeyDictionary()
"""One FIFO lock per engine: `asyncio.Lock` hands itself to the oldest waiter."""


class CommitError(Exception):
    """COMMIT itself failed: whether the transaction is durable is unknown."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(f"commit failed: {cause!r}")
        self.cause = cause


def datetime_to_db(dialect: Dialect) -> Callable[[datetime | None], Any]:
    """The dialect's own bind conversion of `UTCDateTime` (an ISO string on SQLite)."""
    processor = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    assert processor is not None
    return processor


CHUNK_ROWS = (256, 128, 64, 32, 16, 8, 4, 2, 1)
"""Rows per multi-row statement: a batch is cut into these sizes (largest first), so each
table has at most nine statement shapes in SQLite's statement cache, and 256 rows of up to
120 columns stay below SQLite's 32,766 bound parameters."""


@dataclass(frozen=True, slots=True)
class RowsStatement:
    """One statement carrying `rows` rows: `sql` with their flattened `params`."""

    sql: str
    params: list[Any]
    rows: int


def rows_statements(template: str, rows: Sequence[Sequence[Any]]) -> list[RowsStatement]:
    """`template` run over `rows` in as few statements as `CHUNK_ROWS` allows.

    `template` holds `{rows}` where a VALUES list goes: `INSERT INTO t (a, b) VALUES {rows}`,
    or `UPDATE t SET ... FROM (VALUES {rows}) AS v WHERE t.id = v.column1` (SQLite names the
    columns of a VALUES list `column1`, `column2`, ...). Every row must have the same width.
    """
    statements: list[RowsStatement] = []
    start, total = 0, len(rows)
    while start < total:
        size = next(n for n in CHUNK_ROWS if n <= total - start)
        chunk = rows[start : start + size]
        params = [value for row in chunk for value in row]
        statements.append(RowsStatement(_rows_sql(template, len(chunk[0]), size), params, size))
        start += size
    return statements


@lru_cache(maxsize=512)
def _rows_sql(template: str, width: int, count: int) -> str:
    group = "(" + ", ".join("?" * width) + ")"
    return template.format(rows=", ".join([group] * count))


async def sqlite_connection(conn: AsyncConnection) -> sqlite3.Connection:
    """The driver's own connection under `conn` (to tell pooled connections apart)."""
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    assert driver is not None
    connection: sqlite3.Connection = driver._conn
    return connection


async def run_transaction(engine: AsyncEngine, work: Callable[[sqlite3.Connection], T]) -> T:
    """`work(connection)` in one transaction on the aiosqlite thread; its result after COMMIT.

    `work` must not commit or roll back itself. Any exception it raises rolls the transaction
    back and propagates; driver errors (`sqlite3.Error`) become SQLAlchemy's classes
    (`IntegrityError`, `OperationalError`, ...), as they would through the engine.

    Raises:
        CommitError: COMMIT failed (outcome unknown).
    """
    turn = _turns.get(engine)
    if turn is None:
        turn = _turns[engine] = asyncio.Lock()
    async with turn:
        return await _run_transaction(engine, work)


async def _run_transaction(engine: AsyncEngine, work: Callable[[sqlite3.Connection], T]) -> T:
    # A bare pool checkout (no `Connection` around it): SQLite's pool does not reset a
    # connection on return (`engine.create_engine`), so checking in is a plain queue put.
    raw = await engine.raw_connection()
    try:
        driver = raw.driver_connection
        assert driver is not None

        def transaction() -> T:
            connection: sqlite3.Connection = driver._conn
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.rollback()
                raise
            try:
                connection.commit()
            except Exception as exc:
                if connection.in_transaction:
                    connection.rollback()
                raise CommitError(exc) from exc
            return result

        # aiosqlite's one entry point for running a function on its thread (stable since 0.17).
        try:
            result: T = await driver._execute(transaction)
        except sqlite3.Error as exc:
            raise _translated(exc) from exc
        except CommitError as exc:
            if isinstance(exc.cause, sqlite3.Error):
                raise CommitError(_translated(exc.cause)) from exc.cause
            raise
        return result
    finally:
        raw.close()


def _translated(error: sqlite3.Error) -> BaseException:
    return DBAPIError.instance(None, None, error, sqlite3.Error)
