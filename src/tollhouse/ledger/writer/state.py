"""The in-memory picture of the accounts and holds one batch touches, and the undo journal.

A batch loads the rows of the customers it involves (locked), applies its operations one by one
against this state with exact sequential semantics, then writes the difference. An operation
that breaks a business rule is undone here (`rollback`) and fails alone: nothing of it reaches
the database.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tollhouse.ids import new_id
from tollhouse.ledger.models import AccountKind, HoldStatus, account_id_for
from tollhouse.ledger.schemas import GrantView, HoldView, spend_key


class StaleState(Exception):
    """The batch's picture contradicts itself or the database (e.g. a cached hold another
    process settled meanwhile). Not a business error: the writer drops its caches and retries
    the ops one by one from the database."""


@dataclass(slots=True, eq=False)
class Account:
    """A `ledger_accounts` row as the batch sees it. System accounts are not loaded: their
    `balance` here is only this batch's delta (`is_system`)."""

    id: str
    customer_id: str | None
    currency: str
    kind: str
    balance: int
    lower_bound: int | None
    amount: int | None = None
    expires_at: datetime | None = None
    priority: int = 0
    source: str | None = None
    description: str = ""
    idempotency_key: str | None = None
    revoked_at: datetime | None = None
    created_at: datetime | None = None
    start_balance: int = 0
    """Balance when loaded (0 for new and system accounts): the write is `balance - start`."""
    is_new: bool = False
    """Created by this batch: INSERTed with its final balance."""
    is_system: bool = False
    meta_dirty: bool = False
    """`lower_bound`, `amount` or `revoked_at` changed: needs an UPDATE of those columns."""
    held_from: int | None = None
    """Overdraft only: micros under open holds drawn from it (None = not loaded)."""

    def is_live(self, now: datetime) -> bool:
        """A grant lot that may be spent at `now` (whatever its balance)."""
        return (
            self.kind == AccountKind.GRANT
            and self.revoked_at is None
            and (self.expires_at is None or self.expires_at > now)
        )

    def grant_view(self) -> GrantView:
        assert self.customer_id is not None and self.created_at is not None
        return GrantView.from_row(self)


@dataclass(slots=True, eq=False)
class Hold:
    """A `ledger_holds` row plus its allocations `(account_id, amount)` in draw order."""

    id: str
    customer_id: str
    currency: str
    amount: int
    captured_amount: int
    status: str
    idempotency_key: str | None
    created_at: datetime
    expires_at: datetime
    settled_at: datetime | None
    metadata: dict[str, Any]
    allocations: list[tuple[str, int]] = field(default_factory=list)
    is_new: bool = False
    dirty: bool = False

    def view(self, available_after_micros: int | None = None) -> HoldView:
        return HoldView.from_row(self, available_after_micros)


EntryRow = tuple[str, str, str | None, int, str, str | None, str]
"""(transfer_id, account_id, customer_id, amount, kind, hold_id, description)."""


class BatchState:
    """Accounts and holds of the batch's customers, the rows to write, and an undo journal."""

    def __init__(self, now: datetime) -> None:
        self.now = now
        self.versions: dict[str, int] = {}
        """PostgreSQL: the `version` of each escrow row the batch holds (locked, or cached at
        it); the write adds 1 to each, provided it still reads so."""
        self.accounts: dict[str, Account] = {}
        self.by_customer: dict[str, list[Account]] = {}
        self.grant_keys: dict[tuple[str, str], Account] = {}
        self.holds: dict[str, Hold] = {}
        self.hold_keys: dict[tuple[str, str], Hold] = {}
        self.entries: list[EntryRow] = []
        self.new_accounts: list[Account] = []
        self.new_holds: list[Hold] = []
        self.paid_lots: set[str] = set()
        """Lots (loaded for a reversal) that a payment funded (`EntryKind.PAYMENT`)."""
        self.reversals: dict[str, int] = {}
        """Reversal transfer id -> micros it moved, for the reversals loaded or made."""
        self._journal: list[tuple[Any, str, Any]] = []
        self._mark = (0, 0, 0)

    # -- loading -------------------------------------------------------------------------

    def add_account(self, account: Account) -> None:
        """Register a loaded (or new) account."""
        self.accounts[account.id] = account
        if account.customer_id is not None:
            self.by_customer.setdefault(account.customer_id, []).append(account)
            if account.idempotency_key is not None and account.kind == AccountKind.GRANT:
                self.grant_keys[(account.customer_id, account.idempotency_key)] = account

    def add_hold(self, hold: Hold) -> None:
        self.holds[hold.id] = hold
        if hold.idempotency_key is not None:
            self.hold_keys[(hold.customer_id, hold.idempotency_key)] = hold

    # -- per-operation journal -------------------------------------------------------------

    def begin(self) -> None:
        """Start an operation: everything until `rollback` can be undone."""
        self._journal.clear()
        self._mark = (len(self.entries), len(self.new_accounts), len(self.new_holds))

    def rollback(self) -> None:
        """Undo the current operation's changes (a business rule failed)."""
        for obj, attr, old in reversed(self._journal):
            setattr(obj, attr, old)
        self._journal.clear()
        n_entries, n_accounts, n_holds = self._mark
        del self.entries[n_entries:]
        for account in self.new_accounts[n_accounts:]:
            del self.accounts[account.id]
            if account.customer_id is not None:
                self.by_customer[account.customer_id].remove(account)
                if account.idempotency_key is not None:
                    self.grant_keys.pop((account.customer_id, account.idempotency_key), None)
        del self.new_accounts[n_accounts:]
        for hold in self.new_holds[n_holds:]:
            del self.holds[hold.id]
            if hold.idempotency_key is not None:
                self.hold_keys.pop((hold.customer_id, hold.idempotency_key), None)
        del self.new_holds[n_holds:]

    def set(self, obj: Any, attr: str, value: Any) -> None:
        """`setattr` that the journal can undo."""
        self._journal.append((obj, attr, getattr(obj, attr)))
        setattr(obj, attr, value)

    def create_account(self, account: Account) -> Account:
        account.is_new = True
        self.new_accounts.append(account)
        self.add_account(account)
        return account

    def create_hold(self, hold: Hold) -> Hold:
        hold.is_new = True
        self.new_holds.append(hold)
        self.add_hold(hold)
        return hold

    # -- lookups ---------------------------------------------------------------------------

    def singleton(
        self, kind: AccountKind, currency: str, customer_id: str | None
    ) -> Account | None:
        """The customer's escrow/overdraft account, or a system account (delta-only)."""
        account_id = account_id_for(kind, currency, customer_id)
        account = self.accounts.get(account_id)
        if account is None and customer_id is None:
            account = Account(
                id=account_id,
                customer_id=None,
                currency=currency,
                kind=kind.value,
                balance=0,
                lower_bound=None,
                is_system=True,
            )
            self.accounts[account_id] = account
        return account

    def escrow(self, customer_id: str, currency: str) -> Account:
        account = self.singleton(AccountKind.ESCROW, currency, customer_id)
        if account is None:
            raise StaleState(f"escrow of {customer_id}/{currency} was not loaded")
        return account

    def system(self, kind: AccountKind, currency: str) -> Account:
        account = self.singleton(kind, currency, None)
        assert account is not None
        return account

    def live_lots(self, customer_id: str, currency: str) -> list[Account]:
        """The customer's spendable lots (live, balance > 0) in spend order."""
        now = self.now
        lots = [
            a
            for a in self.by_customer.get(customer_id, ())
            if a.balance > 0 and a.currency == currency and a.is_live(now)
        ]
        if len(lots) > 1:
            lots.sort(key=spend_key)
        return lots

    # -- money movement --------------------------------------------------------------------

    def transfer(
        self,
        source: Account,
        target: Account,
        amount: int,
        kind: str,
        hold_id: str | None = None,
        description: str = "",
        transfer_id: str | None = None,
    ) -> None:
        """Move `amount` (> 0) micros from `source` to `target`: two entries summing to zero,
        under `transfer_id` (default: a new id).

        Raises:
            StaleState: `source` would fall below its lower bound. Business rules check
                before moving money, so this means the picture was stale (or a bug).
        """
        if amount <= 0:
            raise StaleState(f"transfer of {amount} micros")
        new_source = source.balance - amount
        if source.lower_bound is not None and new_source < source.lower_bound:
            raise StaleState(f"{source.kind} account {source.id} would go below its bound")
        self.set(source, "balance", new_source)
        self.set(target, "balance", target.balance + amount)
        transfer_id = transfer_id or new_id("tr")
        self.entries.append(
            (transfer_id, source.id, source.customer_id, -amount, kind, hold_id, description)
        )
        self.entries.append(
            (transfer_id, target.id, target.customer_id, amount, kind, hold_id, description)
        )

    def set_hold_status(self, hold: Hold, status: HoldStatus, captured_amount: int = 0) -> None:
        self.set(hold, "status", status.value)
        self.set(hold, "captured_amount", captured_amount)
        self.set(hold, "settled_at", self.now)
        if not hold.is_new:
            self.set(hold, "dirty", True)


class HoldCache:
    """Open holds as last committed by this process, so a capture or void needs no read.

    Safe with other writers: a hold's customer and allocations never change, and a status
    changed elsewhere makes the guarded write fail, which drops the entry and retries from the
    database. Bounded: the oldest entries go first (a hold settled elsewhere just ages out).
    """

    def __init__(self, max_size: int = 50_000) -> None:
        self._holds: dict[str, Hold] = {}
        self._max_size = max_size

    def get(self, hold_id: str) -> Hold | None:
        return self._holds.get(hold_id)

    def remember(self, holds: Iterable[Hold]) -> None:
        """After a COMMIT: keep the open holds, drop the settled ones."""
        cache = self._holds
        for hold in holds:
            if hold.status == HoldStatus.OPEN:
                cache[hold.id] = hold
            else:
                cache.pop(hold.id, None)
        while len(cache) > self._max_size:
            del cache[next(iter(cache))]

    def forget(self, hold_ids: Iterable[str]) -> None:
        """After a failed batch: nothing about these holds is trusted any more."""
        for hold_id in list(hold_ids):
            self._holds.pop(hold_id, None)

    def clear(self) -> None:
        """After a failed write of several batches: trust no hold any more."""
        self._holds.clear()


MAX_CACHED_CUSTOMERS = 10_000
"""The accounts caches keep at most this many customers; the one cached longest ago goes
first (and is read from the database again by its next batch)."""


class AccountCache:
    """SQLite only: each customer's accounts as this process last committed them.

    Sound because on SQLite the process's `Ledger` is the file's only writer (see
    `writer/cached.py`), and checked anyway: `version` is the `PRAGMA data_version` of
    `connection` read before the accounts were loaded; another connection's COMMIT changes it,
    and a batch that sees another value (or runs on another pooled connection) drops the
    cache. Per customer: every account the general load read (non-lot accounts, lots holding
    money) and every one created since. At most `max_customers` (see `MAX_CACHED_CUSTOMERS`).
    """

    def __init__(self, max_customers: int = MAX_CACHED_CUSTOMERS) -> None:
        self.max_customers = max_customers
        self.customers: dict[str, list[Account]] = {}
        self.connection: sqlite3.Connection | None = None
        self.version: int | None = None

    def remember(self, state: BatchState, connection: sqlite3.Connection, version: int) -> None:
        """After a COMMIT: the batch's customers as now stored (read at `version`)."""
        if connection is not self.connection or version != self.version:
            self.customers.clear()
            self.connection, self.version = connection, version
        for customer_id, accounts in state.by_customer.items():
            for account in accounts:
                committed(account)
            self.customers.pop(customer_id, None)  # to the end: the most recent
            self.customers[customer_id] = list(accounts)
        while len(self.customers) > self.max_customers:
            del self.customers[next(iter(self.customers))]

    def is_current(self, connection: sqlite3.Connection, version: int) -> bool:
        """Nobody else committed since the cache was loaded (call inside the transaction)."""
        return connection is self.connection and version == self.version

    def clear(self) -> None:
        """Trust nothing cached any more (a failed batch, another writer)."""
        self.customers.clear()
        self.connection = self.version = None


def committed(account: Account) -> None:
    """Mark `account` as stored: its balance is the new start, nothing is pending."""
    account.start_balance = account.balance
    account.is_new = False
    account.meta_dirty = False
