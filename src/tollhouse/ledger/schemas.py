"""Read-only views the ledger hands out (frozen; never ORM objects). Money in int micros."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class _Spendable(Protocol):
    @property
    def expires_at(self) -> datetime | None: ...
    @property
    def priority(self) -> int: ...
    @property
    def created_at(self) -> datetime | None: ...
    @property
    def id(self) -> str: ...


def spend_key(lot: _Spendable) -> tuple[bool, datetime | None, int, datetime | None, str]:
    """Spend order: expiring first (soonest first), then priority ascending, then oldest."""
    return (lot.expires_at is None, lot.expires_at, lot.priority, lot.created_at, lot.id)


@dataclass(frozen=True, slots=True)
class GrantView:
    """A grant lot. `remaining` excludes what open holds took from it (that sits in escrow)."""

    id: str
    amount: int
    """Micros granted."""
    remaining: int
    """Micros left in the lot now (>= 0)."""
    expires_at: datetime | None
    priority: int
    source: str
    customer_id: str
    currency: str
    description: str
    created_at: datetime
    revoked_at: datetime | None
    idempotency_key: str | None
    replayed: bool = False
    """True on the answer to a grant whose idempotency key was used before: this is the first
    grant, and nothing was added."""

    @classmethod
    def from_row(cls, row: Any) -> GrantView:
        """The view of a `ledger_accounts` grant row (or any object with its columns)."""
        return cls(
            id=row.id,
            amount=row.amount or 0,
            remaining=row.balance,
            expires_at=row.expires_at,
            priority=row.priority,
            source=row.source or "manual",
            customer_id=row.customer_id,
            currency=row.currency,
            description=row.description,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            idempotency_key=row.idempotency_key,
        )

    def is_live(self, now: datetime) -> bool:
        """Spendable: not revoked and not expired at `now` (whatever `remaining` is)."""
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class HoldView:
    """A hold. `status` is `open`, `captured`, `voided` or `expired`."""

    id: str
    customer_id: str
    currency: str
    amount: int
    """Micros held."""
    captured_amount: int
    """Micros captured (0 unless captured)."""
    status: str
    created_at: datetime
    expires_at: datetime
    settled_at: datetime | None
    idempotency_key: str | None
    metadata: dict[str, Any] = field(default_factory=dict)
    available_after_micros: int | None = None
    """Set on the answer to a new hold: the wallet's live lots after this hold, in micros
    (negative when the hold drew on the overdraft). None on every other read."""
    replayed: bool = False
    """True on the answer to a hold whose idempotency key was used before (this is the first
    hold, and nothing more was reserved), and to a capture or void of a hold already settled
    so (nothing moved)."""

    @classmethod
    def from_row(cls, row: Any, available_after_micros: int | None = None) -> HoldView:
        """The view of a `ledger_holds` row (or any object with its columns)."""
        return cls(
            id=row.id,
            customer_id=row.customer_id,
            currency=row.currency,
            amount=row.amount,
            captured_amount=row.captured_amount,
            status=row.status,
            created_at=row.created_at,
            expires_at=row.expires_at,
            settled_at=row.settled_at,
            idempotency_key=row.idempotency_key,
            metadata=row.metadata or {},
            available_after_micros=available_after_micros,
        )

    @property
    def released_amount(self) -> int:
        """Micros given back: all of it once voided or expired, the rest once captured."""
        if self.status == "open":
            return 0
        return self.amount - self.captured_amount


@dataclass(frozen=True, slots=True)
class Balance:
    """A customer's wallet in one currency at one instant."""

    available_micros: int
    """Sum of the live grant lots (spendable without overdraft)."""
    held_micros: int
    """Micros in escrow under open holds."""
    overdraft_limit_micros: int
    """Configured credit line (0 = none)."""
    grants: list[GrantView]
    """Live lots with money left, in spend order."""
    overdraft_used_micros: int = 0
    """Micros drawn on the credit line (held or owed)."""
    customer_id: str = ""
    currency: str = "usd"

    @property
    def spendable_micros(self) -> int:
        """What a new hold may take now: available plus unused overdraft."""
        return self.available_micros + self.overdraft_limit_micros - self.overdraft_used_micros


@dataclass(frozen=True, slots=True)
class TransactionView:
    """One entry on one of the customer's accounts (grant lots, escrow, overdraft)."""

    id: int
    """Entry id: increasing; pass the last one as `before_id` for the next page."""
    transfer_id: str
    kind: str
    """An `EntryKind` value: grant, hold, capture, release, void, expire, revoke, overdraft."""
    amount: int
    """Signed micros on `account_kind`'s account: positive credits it."""
    account_kind: str
    hold_id: str | None
    created_at: datetime
    description: str
    account_id: str = ""
    currency: str = "usd"
    hold_metadata: Mapping[str, Any] | None = None
    """The metadata of the hold the entry moved (None for entries without a hold)."""


@dataclass(frozen=True, slots=True)
class ReversalView:
    """What `Ledger.reverse_grant` took back from a lot."""

    grant_id: str
    requested_micros: int
    """What the caller asked to take back."""
    reversed_micros: int
    """What was taken back: at most what the lot still held (spent or held credits stay)."""
    transfer_id: str
    """The reversal's transfer (no entries when nothing was taken)."""
    replayed: bool = False
    """True when this key already reversed the lot: the first answer, nothing moved again."""


@dataclass(frozen=True, slots=True)
class SweepResult:
    """What one `sweep` did."""

    expired_grants: int = 0
    """Lots whose rest moved to the expired account."""
    expired_micros: int = 0
    """Micros expired."""
    expired_holds: int = 0
    """Open holds past their expiry, released back (status `expired`)."""
