"""Queued operations: validated arguments plus the future the caller awaits.

Every operation names the customers it touches (`customer_id`) or a hold/grant id that the
batch resolves to a customer before locking.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Outcome = tuple[bool, Any]
"""(True, result) or (False, exception) per op."""


@dataclass(slots=True, eq=False)
class Op:
    """Base: the caller's future, resolved after the batch's commit."""

    future: asyncio.Future[Any]


@dataclass(slots=True, eq=False)
class GrantOp(Op):
    customer_id: str
    amount: int
    idempotency_key: str
    currency: str
    expires_at: datetime | None
    priority: int
    source: str
    description: str
    paid: bool = False
    """Funded from the payments account (a payment's credits) instead of issuance."""


@dataclass(slots=True, eq=False)
class HoldOp(Op):
    hold_id: str
    """The new hold's id, chosen with the op: a batch retried the general way (or op by op)
    makes the same hold."""
    customer_id: str
    amount: int
    currency: str
    idempotency_key: str | None
    expires_at: datetime | None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class CaptureOp(Op):
    hold_id: str
    amount: int
    customer_id: str | None
    """Tenancy check: when set, a hold of another customer is `HoldNotFound`."""


@dataclass(slots=True, eq=False)
class VoidOp(Op):
    hold_id: str
    customer_id: str | None


@dataclass(slots=True, eq=False)
class RevokeOp(Op):
    grant_id: str
    customer_id: str | None


@dataclass(slots=True, eq=False)
class ReverseOp(Op):
    """Take up to `amount` back from a lot into the account that funded it."""

    grant_id: str
    amount: int
    transfer_id: str
    """Derived from the grant and the caller's key: the transfer's id, and so its
    idempotency (a replay finds the transfer already written)."""
    customer_id: str | None
    description: str


@dataclass(slots=True, eq=False)
class OverdraftOp(Op):
    customer_id: str
    limit: int
    currency: str


@dataclass(slots=True, eq=False)
class SweepCustomerOp(Op):
    """Expire one customer's stale holds and expired lots in one currency."""

    customer_id: str
    currency: str
    now: datetime


def resolve(op: Op, ok: bool, value: Any) -> None:
    """Answer `op` with its outcome, unless its caller is gone (cancelled)."""
    if op.future.done():
        return
    if ok:
        op.future.set_result(value)
    else:
        op.future.set_exception(value)
