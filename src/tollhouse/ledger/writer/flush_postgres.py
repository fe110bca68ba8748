"""PostgreSQL writes: one statement of data-modifying CTEs over array parameters.

Escrow rows (checked against the batch's `version`s, which a batch that changes a customer's
accounts advances), entries, new holds, allocations, guarded customer balances, guarded hold
settlements and (when there is just one) the system account go in ONE round trip, and the
statement aborts itself if any guard missed a row (`ledger_check`, migration `ledger_0002`): a
batch whose only statement this is may run in autocommit mode (`cached_postgres`). It answers
the balances of the batch's customers' accounts. Rare writes (new accounts, metadata, several
system accounts) are separate statements; several system accounts are updated in id order so
two processes never deadlock on them.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tollhouse.ledger.models import accounts_table
from tollhouse.ledger.writer.flush import Changes, account_row
from tollhouse.storage.base import UTCDateTime
from tollhouse.storage.driver import HeldConnection, driver_statement

A = accounts_table.c

_WRITE = text(
    "WITH "
    "escrows AS (UPDATE ledger_accounts AS x SET balance = x.balance + u.delta, "
    "version = x.version + u.bump FROM unnest(CAST(:g_id AS VARCHAR[]), "
    "CAST(:g_version AS BIGINT[]), CAST(:g_delta AS BIGINT[]), CAST(:g_bump AS BIGINT[])) "
    "AS u(id, version, delta, bump) WHERE x.id = u.id AND x.version = u.version "
    "AND (u.delta >= 0 OR x.balance + u.delta >= x.lower_bound) RETURNING x.id, x.balance), "
    "guard AS (SELECT count(*) = :g_n AS ok FROM escrows), "
    "entries AS (INSERT INTO ledger_entries "
    "(transfer_id, account_id, customer_id, amount, kind, hold_id, description, created_at) "
    "SELECT t, a, c, m, k, h, d, CAST(:now AS TIMESTAMPTZ) FROM unnest("
    "CAST(:e_transfer AS VARCHAR[]), CAST(:e_account AS VARCHAR[]), "
    "CAST(:e_customer AS VARCHAR[]), CAST(:e_amount AS BIGINT[]), CAST(:e_kind AS VARCHAR[]), "
    "CAST(:e_hold AS VARCHAR[]), CAST(:e_description AS TEXT[])) AS u(t, a, c, m, k, h, d), "
    "guard WHERE guard.ok), "
    "holds AS (INSERT INTO ledger_holds (id, customer_id, currency, amount, captured_amount, "
    "status, idempotency_key, created_at, expires_at, settled_at, metadata) "
    "SELECT u.* FROM unnest(CAST(:h_id AS VARCHAR[]), CAST(:h_customer AS VARCHAR[]), "
    "CAST(:h_currency AS VARCHAR[]), CAST(:h_amount AS BIGINT[]), "
    "CAST(:h_captured AS BIGINT[]), CAST(:h_status AS VARCHAR[]), CAST(:h_key AS VARCHAR[]), "
    "CAST(:h_created AS TIMESTAMPTZ[]), CAST(:h_expires AS TIMESTAMPTZ[]), "
    "CAST(:h_settled AS TIMESTAMPTZ[]), CAST(:h_metadata AS JSON[])) "
    "AS u(i, c, cur, a, ca, s, k, cr, ex, se, m), guard WHERE guard.ok), "
    "allocations AS (INSERT INTO ledger_hold_allocations (hold_id, seq, account_id, amount) "
    "SELECT u.* FROM unnest(CAST(:l_hold AS VARCHAR[]), CAST(:l_seq AS INTEGER[]), "
    "CAST(:l_account AS VARCHAR[]), CAST(:l_amount AS BIGINT[])) AS u(h, s, a, m), guard "
    "WHERE guard.ok), "
    "balances AS (UPDATE ledger_accounts AS x SET balance = x.balance + u.delta "
    "FROM unnest(CAST(:b_id AS VARCHAR[]), CAST(:b_delta AS BIGINT[])) AS u(id, delta), guard "
    "WHERE guard.ok AND x.id = u.id AND (x.lower_bound IS NULL OR u.delta >= 0 "
    "OR x.balance + u.delta >= x.lower_bound) RETURNING x.id, x.balance), "
    "settled AS (UPDATE ledger_holds AS x SET status = u.status, captured_amount = u.captured, "
    "settled_at = u.settled FROM unnest(CAST(:s_id AS VARCHAR[]), CAST(:s_status AS VARCHAR[]), "
    "CAST(:s_captured AS BIGINT[]), CAST(:s_settled AS TIMESTAMPTZ[])) "
    "AS u(id, status, captured, settled), guard "
    "WHERE guard.ok AND x.id = u.id AND x.status = 'open' RETURNING 1), "
    "written AS (SELECT id, balance FROM escrows UNION ALL SELECT id, balance FROM balances), "
    "now_held AS (SELECT a.id, coalesce(w.balance, a.balance) AS balance "
    "FROM ledger_accounts AS a LEFT JOIN written AS w ON w.id = a.id "
    "WHERE a.customer_id = ANY(CAST(:r_customer AS VARCHAR[])) "
    "AND (a.kind <> 'grant' OR a.balance <> 0 OR w.id IS NOT NULL)) "
    "SELECT ledger_check((SELECT ok FROM guard), 'an escrow row (version or bound)'), "
    "ledger_check((SELECT count(*) FROM balances) = :b_n, 'an account balance (bound)'), "
    "ledger_check((SELECT count(*) FROM settled) = :s_n, 'a hold (no longer open)'), "
    "ARRAY(SELECT id FROM now_held ORDER BY id) AS r_id, "
    "ARRAY(SELECT balance FROM now_held ORDER BY id) AS r_balance"
)
"""Every write of a batch in one statement, which checks itself: the escrow rows first (each
must still be at the batch's `version`; it gains `bump` and takes its balance change), and only
then (`guard`) everything else; any row that does not match makes `ledger_check` abort the whole
statement with SQLSTATE 40001, so nothing of it is written even in autocommit mode.

It answers one row: the checks, then `r_id` and `r_balance`, the balances of the `r_customer`
customers' accounts (their lots with money, and every other kind) as this statement leaves them
for the rows it wrote, as its snapshot saw them for the others: what other processes' batches
did to them, for the cache of a process that did not see those (`cached_postgres`)."""
_DRIVER_WRITE = driver_statement(_WRITE)
"""`_WRITE` for `HeldConnection`."""
_SYSTEM_BALANCE = text("UPDATE ledger_accounts SET balance = balance + :delta WHERE id = :id")
_ACCOUNT_META = (
    update(accounts_table)
    .where(A.id == bindparam("b_id"))
    .values(
        lower_bound=bindparam("b_lower_bound"),
        amount=bindparam("b_amount"),
        revoked_at=bindparam("b_revoked_at", type_=UTCDateTime()),
    )
)


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Transpose rows into `width` column lists (empty lists for no rows)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


Balances = dict[str, int]
"""account id -> balance in micros, as `_WRITE` reports them (`r_id`, `r_balance`)."""


async def write(conn: AsyncConnection, changes: Changes, now: datetime) -> Balances:
    """Write `changes`. Returns the balances of their customers' accounts (`_WRITE`).

    Raises:
        DBAPIError: SQLSTATE 40001 when a guarded row did not match (`_WRITE`); nothing of
            the statement is written.
    """
    if changes.new_accounts:
        await conn.execute(insert(accounts_table), [account_row(a) for a in changes.new_accounts])
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
    params, late_system = _write_params(changes, now)
    row = (await conn.execute(_WRITE, params)).one()
    if late_system:
        await conn.execute(
            _SYSTEM_BALANCE, [{"id": id_, "delta": delta} for id_, delta in late_system]
        )
    return dict(zip(row.r_id, row.r_balance, strict=True))


def writes_alone(changes: Changes) -> bool:
    """`changes` are all in `_WRITE`, ONE statement (`write_alone` may send them)."""
    return not changes.new_accounts and not changes.meta and len(changes.system) <= 1


async def write_alone(connection: HeldConnection, changes: Changes, now: datetime) -> Balances:
    """Write `changes` (`writes_alone`) in ONE statement, its own transaction: committed when
    this returns, nothing of it written when it raises. Returns what `write` returns.

    Raises:
        DBAPIError: as `write`, or the connection failed (the outcome is then unknown).
    """
    assert writes_alone(changes)
    params, _ = _write_params(changes, now)
    (row,) = await connection.execute(_DRIVER_WRITE, params)
    return dict(zip(row["r_id"], row["r_balance"], strict=True))


def _write_params(changes: Changes, now: datetime) -> tuple[dict[str, Any], list[tuple[str, int]]]:
    """`_WRITE`'s parameters, and the system accounts' deltas it does not carry (when there are
    several: written after it, in id order)."""
    bumped = changes.bumped
    escrows = [
        (account_id, version, 0, int(account_id in bumped))
        for account_id, version in sorted(changes.versions.items())
    ]
    index = {row[0]: n for n, row in enumerate(escrows)}
    balances: list[tuple[str, int]] = []
    for account_id, delta in changes.balances:
        if account_id in index:
            n = index[account_id]
            escrows[n] = (*escrows[n][:2], delta, escrows[n][3])
        else:
            balances.append((account_id, delta))
    late_system = changes.system
    if len(changes.system) == 1:  # one shared row: no lock-order question, write it inline
        balances += changes.system
        late_system = []
    g = _columns(escrows, 4)
    e = _columns(changes.entries, 7)
    holds = changes.new_holds
    l_ = _columns(changes.allocations, 4)
    b = _columns(balances, 2)
    settled = changes.settled
    params: dict[str, Any] = {
        "now": now,
        "g_id": g[0],
        "g_version": g[1],
        "g_delta": g[2],
        "g_bump": g[3],
        "g_n": len(escrows),
        "e_transfer": e[0],
        "e_account": e[1],
        "e_customer": e[2],
        "e_amount": e[3],
        "e_kind": e[4],
        "e_hold": e[5],
        "e_description": e[6],
        "h_id": [h.id for h in holds],
        "h_customer": [h.customer_id for h in holds],
        "h_currency": [h.currency for h in holds],
        "h_amount": [h.amount for h in holds],
        "h_captured": [h.captured_amount for h in holds],
        "h_status": [h.status for h in holds],
        "h_key": [h.idempotency_key for h in holds],
        "h_created": [h.created_at for h in holds],
        "h_expires": [h.expires_at for h in holds],
        "h_settled": [h.settled_at for h in holds],
        "h_metadata": [json.dumps(h.metadata) for h in holds],
        "l_hold": l_[0],
        "l_seq": l_[1],
        "l_account": l_[2],
        "l_amount": l_[3],
        "b_id": b[0],
        "b_delta": b[1],
        "b_n": len(balances),
        "s_id": [h.id for h in settled],
        "s_status": [h.status for h in settled],
        "s_captured": [h.captured_amount for h in settled],
        "s_settled": [h.settled_at for h in settled],
        "s_n": len(settled),
        "r_customer": changes.customers,
    }
    return params, late_system
