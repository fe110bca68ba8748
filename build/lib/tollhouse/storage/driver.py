"""Writers' short cuts past SQLAlchemy's per-statement machinery, to the driver itself.

SQLite: run a whole transaction on the driver's own thread, in one hop.

aiosqlite runs every call on one worker thread; SQLAlchemy's async layer makes one round trip
to it per statement, fetch, BEGIN and COMMIT, and each costs far more (GIL hand-offs, a wake-up
of the event loop) than SQLite's own work on small rows. The group-commit writers (ledger,
metering) write a whole batch with ONE call instead: `run_transaction` checks the pooled
connection out (so nothing else uses it meanwhile), then runs `work(connection)` between
`BEGIN IMMEDIATE` and `COMMIT` on the driver's thread.

`work` should be a handful of statements, each carrying many rows (`rows_statement`), with
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

PostgreSQL: `HeldConnection`, one pooled connection a writer keeps, its statements sent with
asyncpg's own `fetch`, each in its own transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, TypeVar

import orjson
from sqlalchemy import TextClause
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InternalError,
    OperationalError,
    ProgrammingError,
)
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


@dataclass(frozen=True, slots=True)
class RowsStatement:
    """One statement carrying `rows` rows: `sql` with its `params`."""

    sql: str
    params: tuple[Any, ...]
    rows: int


def rows_statement(template: str, rows: Sequence[Sequence[Any]]) -> RowsStatement:
    """`template` over all of `rows` in ONE statement: the rows travel as one JSON array
    (`orjson`) that SQLite's `json_each` and `json_extract` turn back into rows (`UPDATE ...
    FROM` needs SQLite >= 3.33, see `storage.engine.MIN_SQLITE`).

    `template` holds `{rows}` where a row source goes: `INSERT INTO t (a, b) {rows}`, or
    `UPDATE t SET ... FROM ({rows}) AS v WHERE t.id = v.column2`; its columns are named
    `column1`, `column2`, ... like a VALUES list's. Values must be JSON scalars: str, int
    (within 64 bits), None; JSON text goes as a string. Every row has the same width.
    """
    if not rows:
        raise ValueError("rows_statement needs at least one row")
    return RowsStatement(
        _rows_sql(template, len(rows[0])), (orjson.dumps(rows).decode(),), len(rows)
    )


@lru_cache(maxsize=64)
def _rows_sql(template: str, width: int) -> str:
    columns = ", ".join(f"json_extract(value, '$[{n}]') AS column{n + 1}" for n in range(width))
    # `WHERE true` lets an INSERT ... SELECT take an ON CONFLICT clause (SQLite's parser).
    return template.format(rows=f"SELECT {columns} FROM json_each(?) WHERE true")


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


@dataclass(frozen=True, slots=True)
class DriverStatement:
    """A `text()` statement compiled once for asyncpg (`driver_statement`), to send with
    `HeldConnection.execute`: its SQL with `$n` placeholders, its parameter names in order."""

    sql: str
    names: tuple[str, ...]


def driver_statement(statement: TextClause) -> DriverStatement:
    """`statement` (named `:params`) compiled for asyncpg, once (at import, say)."""
    compiled = statement.compile(dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
    return DriverStatement(str(compiled), tuple(compiled.positiontup or ()))


class HeldConnection:
    """PostgreSQL: one connection of `engine`'s pool that a single task (a writer) keeps
    checked out, its statements sent with asyncpg's own `fetch` in autocommit mode (each
    statement its own transaction).

    Why: a checkout, a statement through SQLAlchemy's `Connection` and the checkin cost ~0.27
    ms of CPU on this class of machine (~0.45 ms with BEGIN and COMMIT), asyncpg's own `fetch`
    ~0.06 ms (bench/README); a writer that sends one statement per batch spends that on every
    batch.

    Errors come as SQLAlchemy's exceptions, as its `Connection` would raise them (a
    `DBAPIError` subclass by SQLSTATE class, asyncpg's exception as `orig`, with its
    `sqlstate`). A statement the server refused leaves the connection usable; after any other
    failure (the connection broke, the caller was cancelled mid-statement) the connection is
    dropped from the pool and the next statement checks out another.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._connection: AsyncConnection | None = None
        self._driver: Any = None

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        """Run `sql` (asyncpg's `$1` placeholders) with `args`; its rows (asyncpg `Record`s).

        Raises:
            DBAPIError: the statement or the connection failed (`orig` is asyncpg's error).
        """
        if self._driver is None:
            self._connection = await self._engine.connect()
            self._driver = (await self._connection.get_raw_connection()).driver_connection
        try:
            rows: list[Any] = await self._driver.fetch(sql, *args)
            return rows
        except BaseException as exc:
            if not refused_by_server(exc):
                await self.release(broken=True)
            if isinstance(exc, Exception):
                raise _dbapi_error(sql, args, exc) from exc
            raise

    async def execute(self, statement: DriverStatement, params: Mapping[str, Any]) -> list[Any]:
        """`fetch` of `statement` with its named `params`; its rows.

        Raises:
            DBAPIError: as `fetch`.
        """
        return await self.fetch(statement.sql, *[params[name] for name in statement.names])

    async def release(self, *, broken: bool = False) -> None:
        """Give the connection back to the pool (`broken`: close it instead)."""
        connection, self._connection, self._driver = self._connection, None, None
        if connection is None:
            return
        if broken:
            await connection.invalidate()
        await connection.close()


TRANSIENT_SQLSTATES = frozenset({"40001", "40P01"})
"""Serialization failure, deadlock detected: the transaction was rolled back and may be
retried as it was."""


def sqlstate(exc: BaseException) -> str | None:
    """The SQLSTATE of a database error: asyncpg's own, or the one under SQLAlchemy's
    `DBAPIError` (`orig`); None for anything else (SQLite's errors have none)."""
    for error in (exc, getattr(exc, "orig", None)):
        code = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(code, str):
            return code
    return None


def refused_by_server(exc: BaseException) -> bool:
    """The server answered a statement with an error: nothing of it was written, and the
    connection still works. A connection error (SQLSTATE class 08, or none: a client-side
    failure) or a shutdown (57P) leaves both unknown."""
    code = sqlstate(exc)
    return code is not None and not code.startswith(("08", "57P"))


_ERROR_CLASSES: dict[str, type[DBAPIError]] = {
    "08": OperationalError,  # connection exception
    "22": DataError,  # data exception
    "23": IntegrityError,  # integrity constraint violation
    "40": OperationalError,  # transaction rollback (serialization failure, deadlock)
    "42": ProgrammingError,  # syntax error or access rule violation
    "53": OperationalError,  # insufficient resources
    "57": OperationalError,  # operator intervention
    "XX": InternalError,  # internal error
}
"""SQLSTATE class (PostgreSQL's Appendix A) -> the PEP 249 exception SQLAlchemy raises."""


def _dbapi_error(sql: str, args: Sequence[Any], error: Exception) -> DBAPIError:
    """asyncpg's `error` as SQLAlchemy would raise it (no SQLSTATE: a client-side failure of
    the connection, `OperationalError`)."""
    code = sqlstate(error)
    kind = _ERROR_CLASSES.get(code[:2], DBAPIError) if code is not None else OperationalError
    return kind(sql, args, error)
