"""SQLite writes: a few `executemany` calls on the one connection (no other writer exists).

`write` runs them through SQLAlchemy (one thread hop each); `write_on_driver` runs the same
statements on the raw connection, for a batch that runs whole on the driver's thread
(`writer/cached.py`).

Values go to the driver already converted by the dialect's own processors (datetimes, JSON),
skipping SQLAlchemy's per-row parameter processing on the hot path. Customer and system balance
updates share one guarded statement (system accounts have no bound); SQLite reports a reliable
total rowcount for `executemany`.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tollhouse.ledger.models import accounts_table
from tollhouse.ledger.writer.flush import Changes, account_row, check
from tollhouse.storage.base import UTCDateTime
from tollhouse.storage.driver import datetime_to_db

A = accounts_table.c

_ENTRIES = (
    "INSERT INTO ledger_entries (transfer_id, account_id, customer_id, amount, kind, hold_id, "
    "description, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_HOLDS = (
    "INSERT INTO ledger_holds (id, customer_id, currency, amount, captured_amount, status, "
    "idempotency_key, created_at, expires_at, settled_at, metadata) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_ALLOCATIONS = (
    "INSERT INTO ledger_hold_allocations (hold_id, seq, account_id, amount) VALUES (?, ?, ?, ?)"
)
_BALANCE = (
    "UPDATE ledger_accounts SET balance = balance + ?1 WHERE id = ?2 "
    "AND (lower_bound IS NULL OR ?1 >= 0 OR balance + ?1 >= lower_bound)"
)
_SETTLE = (
    "UPDATE ledger_holds SET status = ?, captured_amount = ?, settled_at = ? "
    "WHERE id = ? AND status = 'open'"
)
_ACCOUNT_META = (
    update(accounts_table)
    .where(A.id == bindparam("b_id"))
    .values(
        lower_bound=bindparam("b_lower_bound"),
        revoked_at=bindparam("b_revoked_at", type_=UTCDateTime()),
    )
)


Write = tuple[str, list[tuple[Any, ...]], str | None]
"""(SQL, rows for `executemany`, name of the guard its rowcount must satisfy, if any)."""


def driver_writes(
    changes: Changes, now: datetime, to_db: Callable[[datetime | None], Any]
) -> list[Write]:
    """The raw statements for everything but new accounts and account metadata, in order.

    `to_db` converts datetimes as the dialect does (`storage.driver.datetime_to_db`).
    """
    writes: list[Write] = []
    if changes.entries:
        created_at = to_db(now)
        writes.append((_ENTRIES, [(*row, created_at) for row in changes.entries], None))
    if changes.new_holds:
        writes.append(
            (
                _HOLDS,
                [
                    (
                        h.id,
                        h.customer_id,
                        h.currency,
                        h.amount,
                        h.captured_amount,
                        h.status,
                        h.idempotency_key,
                        to_db(h.created_at),
                        to_db(h.expires_at),
                        to_db(h.settled_at),
                        json.dumps(h.metadata),
                    )
                    for h in changes.new_holds
                ],
                None,
            )
        )
        writes.append((_ALLOCATIONS, list(changes.allocations), None))
    balances = changes.balances + changes.system
    if balances:
        writes.append((_BALANCE, [(d, i) for i, d in balances], "balance"))
    if changes.settled:
        writes.append(
            (
                _SETTLE,
                [(h.status, h.captured_amount, to_db(h.settled_at), h.id) for h in changes.settled],
                "hold",
            )
        )
    return writes


def write_on_driver(
    connection: sqlite3.Connection,
    changes: Changes,
    now: datetime,
    to_db: Callable[[datetime | None], Any],
) -> None:
    """`driver_writes` on a raw connection (on its own thread, inside a transaction).

    Raises `ConcurrentUpdate` if a guarded UPDATE missed a row.
    """
    assert not changes.new_accounts and not changes.meta, "not writable on the driver"
    for sql, rows, guard in driver_writes(changes, now, to_db):
        cursor = connection.executemany(sql, rows)
        if guard is not None:
            check(guard, len(rows), cursor.rowcount)


async def write(conn: AsyncConnection, changes: Changes, now: datetime) -> None:
    """Write `changes`. Raises `ConcurrentUpdate` if a guarded UPDATE missed a row."""
    if changes.new_accounts:
        await conn.execute(insert(accounts_table), [account_row(a) for a in changes.new_accounts])
    for sql, rows, guard in driver_writes(changes, now, datetime_to_db(conn.dialect)):
        result = await conn.exec_driver_sql(sql, rows)
        if guard is not None:
            check(guard, len(rows), result.rowcount)
    if changes.meta:
        await conn.execute(
            _ACCOUNT_META,
            [
                {"b_id": a.id, "b_lower_bound": a.lower_bound, "b_revoked_at": a.revoked_at}
                for a in changes.meta
            ],
        )
