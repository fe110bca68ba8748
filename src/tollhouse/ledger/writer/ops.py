"""Queued operations: validated arguments plus the future the caller awaits.

Every operation names the customers it touches (`customer_id`) or a hold/grant id that the
batch resolves to a customer before locking.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tollhouse.ledger.schemas import HoldView

logger = logging.getLogger(__name__)

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


@dataclass(slots=True, eq=False)
class HoldOp(Op):
    hold_id: str
    """The new hold's id, chosen with the op: a batch retried the general way (or op by op)
    makes the same hold, which a caller answered before the commit already knows."""
    customer_id: str
    amount: int
    currency: str
    idempotency_key: str | None
    expires_at: datetime | None
    metadata: dict[str, Any] = field(default_factory=dict)
    answer_before_commit: bool = False


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


def answer_early(
    ops: Sequence[Op],
    outcomes: Sequence[Outcome],
    *,
    when: Callable[[HoldView], bool] | None = None,
) -> None:
    """Answer the granted holds that asked for it (`answer_before_commit`) now that they are
    decided (under the batch's locks, or over accounts the writer owns: `writer/cached.py`,
    or over cached accounts other processes may also spend: `writer/cached_postgres.py`);
    every other op is answered after the commit.

    With `when`, only the holds it accepts are answered early; the others wait for the commit.

    A refused hold waits for the commit, so a batch redone after a failure (which may then
    grant it) never stores a hold its caller was told was refused.
    """
    for op, (ok, value) in zip(ops, outcomes, strict=True):
        asked = ok and isinstance(op, HoldOp) and op.answer_before_commit
        if asked and not op.future.done() and (when is None or when(value)):
            op.future.set_result(value)


def resolve(op: Op, ok: bool, value: Any) -> None:
    """Answer `op` with its outcome, unless it was answered already: a hold answered early
    that then fails is logged (it was never stored; see `Ledger.hold`)."""
    if op.future.done():
        if not ok and isinstance(op, HoldOp) and not op.future.cancelled():
            logger.error(
                "hold %s was answered before its commit, and its batch failed: %r",
                op.hold_id,
                value,
            )
        return
    if ok:
        op.future.set_result(value)
    else:
        op.future.set_exception(value)
