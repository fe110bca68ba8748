"""Telling a database that does not answer from a database that refused a statement.

`is_unreachable(exc)` is true for the failures a restart, a crash or a network cut of the
database produces, whatever layer raised them:

| failure | raised as |
| --- | --- |
| connection refused, reset, connect timeout | `OSError` / `TimeoutError` from the driver's connect (SQLAlchemy does not wrap it) |
| a pooled connection found dead | `DBAPIError` with `connection_invalidated`, or asyncpg's `InterfaceError` ("connection is closed") under an `OperationalError` / `InterfaceError` |
| the server shutting down or starting | SQLSTATE class 08 (connection exception), 57P (operator intervention: admin shutdown, cannot connect now), 53 (too many connections) |
| a statement timeout (`engine.COMMAND_TIMEOUT_SECONDS`) | `TimeoutError` from the driver |
| no pooled connection free in time | SQLAlchemy's `TimeoutError` |
| SQLite's write lock held too long by another process | `OperationalError` "database is locked" |

Anything else (a constraint violation, a syntax error) is a bug or a business answer and
is not turned into 503. The API answers an unreachable database with
`DatabaseUnavailable` (503 `database-unavailable`, `Retry-After`); background tasks log and
try again on their next pass.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tollhouse.errors import DatabaseUnavailable
from tollhouse.storage.driver import sqlstate

RETRY_AFTER_SECONDS = 1
"""`Retry-After` of a 503 `database-unavailable`: a restart takes seconds; clients may retry
sooner than that without harm."""
UNREACHABLE_SQLSTATE_CLASSES = ("08", "57P", "53")
_DRIVER_MODULES = ("asyncpg", "sqlalchemy", "aiosqlite", "tollhouse.storage")


def is_unreachable(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) means the database did not answer (see the table in
    the module docstring)."""
    seen: set[int] = set()
    error: BaseException | None = exc
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if _unreachable(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def _unreachable(error: BaseException) -> bool:
    if isinstance(error, PoolTimeout):
        return True
    if isinstance(error, DBAPIError):
        if error.connection_invalidated:
            return True
        code = sqlstate(error)
        if code is not None:
            return code.startswith(UNREACHABLE_SQLSTATE_CLASSES)
        if isinstance(error.orig, sqlite3.Error):  # a missing table is one too: not ours
            return "locked" in str(error.orig).lower()
        return isinstance(error, (OperationalError, InterfaceError))
    if type(error).__module__.startswith("asyncpg"):
        # asyncpg's own: a server error carries its SQLSTATE; one without (InterfaceError,
        # "connection is closed") is the client's connection failing.
        code = sqlstate(error)
        return code is None or code.startswith(UNREACHABLE_SQLSTATE_CLASSES)
    if isinstance(error, OSError):  # TimeoutError and ConnectionError are OSErrors
        return _raised_by_driver(error)
    return False


def _raised_by_driver(error: BaseException) -> bool:
    """Whether `error` was raised inside the database driver or SQLAlchemy (an `OSError` of
    an upstream call or a file is not the database's)."""
    traceback = error.__traceback__
    while traceback is not None:
        module = traceback.tb_frame.f_globals.get("__name__", "")
        if isinstance(module, str) and module.startswith(_DRIVER_MODULES):
            return True
        traceback = traceback.tb_next
    return False


def unavailable(exc: BaseException) -> DatabaseUnavailable:
    """The 503 answer for an unreachable database (`is_unreachable(exc)`), its cause named."""
    return DatabaseUnavailable(
        f"the database does not answer ({type(exc).__name__}); retry shortly",
        retry_after_seconds=RETRY_AFTER_SECONDS,
    )
