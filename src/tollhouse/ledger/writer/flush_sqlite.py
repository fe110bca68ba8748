"""SQLite writes: a few multi-row statements on the one connection (no other writer exists).

`SqliteRows` turns batches' changes into one statement per table, carrying all their rows
(`storage.driver.rows_statement`): inserts select from the rows, updates join them
(`UPDATE ... FROM (rows)`). `write` runs them through SQLAlchemy (one thread hop each);
`write_on_driver` runs them on the raw connection, for the cached batches that the
pipeline writes in one hop to the driver's thread (`writer/pipeline_sqlite.py`).

Values go to the driver already converted by the dialect's own processors (datetimes, JSON),
skipping SQLAlchemy's per-row parameter processing on the hot path. Customer and system balance
updates share one guarded statement (system accounts have no bound): each statement's
rowcount must equal its rows, or the guard failed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, insert, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tollhouse.ledger.models import accounts_table
from tollhouse.ledger.writer.flush import Changes, account_row, check
from tollhouse.storage.base import UTCDateTime
from tollhouse.storage.driver import RowsStatement, datetime_to_db, rows_statement

A = accounts_table.c

_ENTRIES = (
    "INSERT INTO ledger_entries (transfer_id, account_id, customer_id, amount, kind, hold_id, "
    "description, created_at) {rows}"
)
_HOLDS = (
    "INSERT INTO ledger_holds (id, customer_id, currency, amount, captured_amount, status, "
    "idempotency_key, created_at, expires_at, settled_at, metadata) {rows}"
)
_ALLOCATIONS = "INSERT INTO ledger_hold_allocations (hold_id, seq, account_id, amount) {rows}"
# (delta, account id); an account appears once per batch.
_BALANCE = (
    "UPDATE ledger_accounts SET balance = balance + v.column1 FROM ({rows}) AS v "
    "WHERE ledger_accounts.id = v.column2 AND (ledger_accounts.lower_bound IS NULL "
    "OR v.column1 >= 0 OR ledger_accounts.balance + v.column1 >= ledger_accounts.lower_bound)"
)
# (status, captured amount, settled at, hold id)
_SETTLE = (
    "UPDATE ledger_holds SET status = v.column1, captured_amount = v.column2, "
    "settled_at = v.column3 FROM ({rows}) AS v "
    "WHERE ledger_holds.id = v.column4 AND ledger_holds.status = 'open'"
)
_ACCOUNT_META = (
    update(accounts_table)
    .where(A.id == bindparam("b_id"))
    .values(
        lower_bound=bindparam("b_lower_bound"),
        amount=bindparam("b_amount"),
        revoked_at=bindparam("b_revoked_at", type_=UTCDateTime()),
    )
)


Write = tuple[RowsStatement, str | None]
"""A statement, and the name of the guard its rowcount must satisfy, if any."""


class SqliteRows:
    """The rows of one or more batches' changes (all but new accounts and account metadata),
    as the driver takes them, written by `writes` in one statement per table.

    Several batches merge into one transaction (`writer/pipeline_sqlite.py`): their rows are
    appended in order, and balance deltas add up per account, so each account is updated
    once (a guarded `balance + delta`, see `flush`). A hold inserted by one batch and settled
    by a later one is inserted first and updated after, as `writes` orders its statements.
    """

    __slots__ = ("allocations", "balances", "entries", "holds", "settled")

    def __init__(self) -> None:
        self.entries: list[tuple[Any, ...]] = []
        self.holds: list[tuple[Any, ...]] = []
        self.allocations: list[tuple[str, int, str, int]] = []
        self.balances: dict[str, int] = {}
        self.settled: list[tuple[Any, ...]] = []

    def add(self, changes: Changes, now: datetime, to_db: Callable[[datetime | None], Any]) -> None:
        """Append `changes` of a batch applied at `now`; `to_db` converts datetimes as the
        dialect does (`storage.driver.datetime_to_db`). All or nothing: nothing is appended
        if building a row raises."""
        times: dict[datetime | None, Any] = {None: None}  # a batch's holds share a few

        def db_time(moment: datetime | None) -> Any:
            value = times.get(moment, times)
            if value is times:
                value = times[moment] = to_db(moment)
            return value

        created_at = db_time(now)
        entries = [(*row, created_at) for row in changes.entries]
        holds = [
            (
                h.id,
                h.customer_id,
                h.currency,
                h.amount,
                h.captured_amount,
                h.status,
                h.idempotency_key,
                db_time(h.created_at),
                db_time(h.expires_at),
                db_time(h.settled_at),
                orjson.dumps(h.metadata).decode(),
            )
            for h in changes.new_holds
        ]
        settled = [
            (h.status, h.captured_amount, db_time(h.settled_at), h.id) for h in changes.settled
        ]
        self.entries += entries
        self.holds += holds
        self.allocations += changes.allocations
        self.settled += settled
        balances = self.balances
        for account_id, delta in changes.balances + changes.system:
            balances[account_id] = balances.get(account_id, 0) + delta

    def writes(self) -> list[Write]:
        """The statements, in write order (inserts, then guarded updates)."""
        writes: list[Write] = []
        if self.entries:
            writes.append((rows_statement(_ENTRIES, self.entries), None))
        if self.holds:
            writes.append((rows_statement(_HOLDS, self.holds), None))
        if self.allocations:
            writes.append((rows_statement(_ALLOCATIONS, self.allocations), None))
        balances = [(d, i) for i, d in self.balances.items() if d]
        if balances:
            writes.append((rows_statement(_BALANCE, balances), "balance"))
        if self.settled:
            writes.append((rows_statement(_SETTLE, self.settled), "hold"))
        return writes


def write_on_driver(connection: sqlite3.Connection, writes: list[Write]) -> None:
    """`SqliteRows.writes` on a raw connection (on its own thread, inside a transaction).

    Raises `ConcurrentUpdate` if a guarded UPDATE missed a row.
    """
    for statement, guard in writes:
        cursor = connection.execute(statement.sql, statement.params)
        if guard is not None:
            check(guard, statement.rows, cursor.rowcount)


async def write(conn: AsyncConnection, changes: Changes, now: datetime) -> None:
    """Write `changes`. Raises `ConcurrentUpdate` if a guarded UPDATE missed a row."""
    if changes.new_accounts:
        await conn.execute(insert(accounts_table), [account_row(a) for a in changes.new_accounts])
    rows = SqliteRows()
    rows.add(changes, now, datetime_to_db(conn.dialect))
    for statement, guard in rows.writes():
        result = await conn.exec_driver_sql(statement.sql, statement.params)
        if guard is not None:
            check(guard, statement.rows, result.rowcount)
    if changes.meta:
        await conn.execute(
            _ACCOUNT_META,
            [
                {
                    "b_id": a.id,
                    "b_lower_bound": a.lower_bound,
                    "b_amount": a.amount,
                    "b_revoked_at": a.revoked_at,
                }
                for a in changes.meta
            ],
        )
