"""Business rules: each function applies one operation to a `BatchState`, or raises.

All checks come before the first movement where possible; the batch undoes a failing
operation's partial changes anyway (`BatchState.rollback`). No I/O here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

from tollhouse.errors import TollhouseError
from tollhouse.ids import new_id
from tollhouse.ledger.errors import (
    CaptureExceedsHold,
    GrantNotFound,
    HoldNotFound,
    HoldNotOpen,
    IdempotencyKeyReused,
    InsufficientCredit,
)
from tollhouse.ledger.models import AccountKind, EntryKind, HoldStatus, account_id_for
from tollhouse.ledger.schemas import GrantView, HoldView, ReversalView, SweepResult
from tollhouse.ledger.writer.ops import (
    CaptureOp,
    GrantOp,
    HoldOp,
    Op,
    Outcome,
    OverdraftOp,
    ReverseOp,
    RevokeOp,
    SweepCustomerOp,
    VoidOp,
)
from tollhouse.ledger.writer.state import Account, BatchState, Hold


def apply_all(state: BatchState, ops: Sequence[Op], hold_ttl: timedelta) -> list[Outcome]:
    """Apply `ops` in order, each on its own: one refused with a business error
    (`TollhouseError`) is rolled back and leaves the others' changes in `state`. Any other
    exception propagates."""
    outcomes: list[Outcome] = []
    for op in ops:
        state.begin()
        try:
            outcomes.append((True, apply(state, op, hold_ttl)))
        except TollhouseError as exc:
            state.rollback()
            outcomes.append((False, exc))
    return outcomes


def apply(state: BatchState, op: Op, hold_ttl: timedelta) -> Any:
    """Apply `op` to `state`; returns the caller's result or raises a `LedgerError`."""
    if isinstance(op, HoldOp):
        return apply_hold(state, op, hold_ttl)
    if isinstance(op, CaptureOp):
        return apply_capture(state, op)
    if isinstance(op, VoidOp):
        return apply_void(state, op)
    if isinstance(op, GrantOp):
        return apply_grant(state, op)
    if isinstance(op, RevokeOp):
        return apply_revoke(state, op)
    if isinstance(op, ReverseOp):
        return apply_reverse(state, op)
    if isinstance(op, OverdraftOp):
        return apply_overdraft(state, op)
    if isinstance(op, SweepCustomerOp):
        return apply_sweep(state, op)
    raise TypeError(f"unknown ledger operation {op!r}")


def _same_arguments(kind: str, key: str, pairs: dict[str, tuple[Any, Any]], **extra: Any) -> None:
    """Raise unless each `(first, again)` pair is equal: the same idempotency key with other
    arguments is a conflict, as Stripe answers it, naming the `fields` that differ.

    Raises:
        IdempotencyKeyReused: 422, with `fields`.
    """
    differ = [name for name, (first, again) in pairs.items() if first != again]
    if differ:
        raise IdempotencyKeyReused(
            f"idempotency key {key!r} was used for a {kind} with another " + ", ".join(differ),
            fields=differ,
            **extra,
        )


def _overdraft(state: BatchState, customer_id: str, currency: str) -> Account | None:
    return state.singleton(AccountKind.OVERDRAFT, currency, customer_id)


def apply_hold(state: BatchState, op: HoldOp, hold_ttl: timedelta) -> HoldView:
    """Draw `amount` from live lots in spend order, then the overdraft line, into escrow."""
    if op.idempotency_key is not None:
        existing = state.hold_keys.get((op.customer_id, op.idempotency_key))
        if existing is not None:
            _same_arguments(
                "hold",
                op.idempotency_key,
                {
                    "amount": (existing.amount, op.amount),
                    "currency": (existing.currency, op.currency),
                },
                hold_id=existing.id,
            )
            return replace(existing.view(), replayed=True)
    lots = state.live_lots(op.customer_id, op.currency)
    available = sum(lot.balance for lot in lots)
    overdraft = _overdraft(state, op.customer_id, op.currency)
    headroom = 0
    if overdraft is not None and overdraft.lower_bound is not None:
        headroom = max(0, overdraft.balance - overdraft.lower_bound)
    if available + headroom < op.amount:
        raise InsufficientCredit(
            f"the wallet has {available} micros (+{headroom} overdraft), {op.amount} are required",
            balance_micros=available,
            required_micros=op.amount,
            overdraft_available_micros=headroom,
            currency=op.currency,
        )
    now = state.now
    hold = state.create_hold(
        Hold(
            id=op.hold_id,
            customer_id=op.customer_id,
            currency=op.currency,
            amount=op.amount,
            captured_amount=0,
            status=HoldStatus.OPEN.value,
            idempotency_key=op.idempotency_key,
            created_at=now,
            expires_at=op.expires_at or now + hold_ttl,
            settled_at=None,
            metadata=op.metadata,
        )
    )
    escrow = state.escrow(op.customer_id, op.currency)
    remaining = op.amount
    for lot in lots:
        take = min(lot.balance, remaining)
        state.transfer(lot, escrow, take, EntryKind.HOLD, hold.id)
        hold.allocations.append((lot.id, take))
        remaining -= take
        if not remaining:
            break
    if remaining:
        assert overdraft is not None
        state.transfer(overdraft, escrow, remaining, EntryKind.HOLD, hold.id)
        hold.allocations.append((overdraft.id, remaining))
        if overdraft.held_from is not None:
            state.set(overdraft, "held_from", overdraft.held_from + remaining)
    return hold.view(available_after_micros=available - op.amount)


def _find_hold(state: BatchState, hold_id: str, customer_id: str | None) -> Hold:
    hold = state.holds.get(hold_id)
    if hold is None or (customer_id is not None and hold.customer_id != customer_id):
        raise HoldNotFound(f"no hold {hold_id!r}", hold_id=hold_id)
    return hold


def _give_back(
    state: BatchState, hold: Hold, escrow: Account, account_id: str, amount: int, kind: EntryKind
) -> None:
    """Release `amount` of a hold from escrow to the account it was drawn from."""
    account = state.accounts[account_id]
    description = "hold expired" if kind == EntryKind.VOID and hold.status == "expired" else ""
    state.transfer(escrow, account, amount, kind, hold.id, description)
    if account.kind == AccountKind.GRANT and account.revoked_at is not None:
        state.transfer(
            account,
            state.system(AccountKind.ISSUANCE, account.currency),
            amount,
            EntryKind.REVOKE,
            hold.id,
            "released into a revoked grant",
        )


def _settle_overdraft_share(state: BatchState, account_id: str, part: int) -> None:
    account = state.accounts[account_id]
    if account.kind == AccountKind.OVERDRAFT and account.held_from is not None:
        state.set(account, "held_from", account.held_from - part)


def apply_capture(state: BatchState, op: CaptureOp) -> HoldView:
    """Capture `op.amount` to revenue (allocations in draw order) and release the rest."""
    hold = _find_hold(state, op.hold_id, op.customer_id)
    if hold.status == HoldStatus.CAPTURED and hold.captured_amount == op.amount:
        return replace(hold.view(), replayed=True)
    if hold.status != HoldStatus.OPEN:
        raise HoldNotOpen(
            f"hold {hold.id} is {hold.status}", hold_id=hold.id, hold_status=hold.status
        )
    if hold.expires_at <= state.now:
        raise HoldNotOpen(
            f"hold {hold.id} expired at {hold.expires_at.isoformat()}",
            hold_id=hold.id,
            hold_status="expired",
        )
    if op.amount > hold.amount:
        raise CaptureExceedsHold(
            f"capture of {op.amount} micros exceeds hold {hold.id} of {hold.amount}",
            hold_id=hold.id,
            hold_micros=hold.amount,
            capture_micros=op.amount,
        )
    escrow = state.escrow(hold.customer_id, hold.currency)
    revenue = state.system(AccountKind.REVENUE, hold.currency)
    left = op.amount
    for account_id, part in hold.allocations:
        take = min(part, left)
        left -= take
        if take:
            state.transfer(escrow, revenue, take, EntryKind.CAPTURE, hold.id)
        if part - take:
            _give_back(state, hold, escrow, account_id, part - take, EntryKind.RELEASE)
        _settle_overdraft_share(state, account_id, part)
    state.set_hold_status(hold, HoldStatus.CAPTURED, op.amount)
    return hold.view()


def _release_all(state: BatchState, hold: Hold, status: HoldStatus) -> None:
    escrow = state.escrow(hold.customer_id, hold.currency)
    state.set_hold_status(hold, status)
    for account_id, part in hold.allocations:
        _give_back(state, hold, escrow, account_id, part, EntryKind.VOID)
        _settle_overdraft_share(state, account_id, part)


def apply_void(state: BatchState, op: VoidOp) -> HoldView:
    """Release the whole hold back to its lots; a voided or expired hold is returned as is."""
    hold = _find_hold(state, op.hold_id, op.customer_id)
    if hold.status in (HoldStatus.VOIDED, HoldStatus.EXPIRED):
        return replace(hold.view(), replayed=True)
    if hold.status != HoldStatus.OPEN:
        raise HoldNotOpen(
            f"hold {hold.id} is {hold.status}", hold_id=hold.id, hold_status=hold.status
        )
    _release_all(state, hold, HoldStatus.VOIDED)
    return hold.view()


def apply_grant(state: BatchState, op: GrantOp) -> GrantView:
    """Open a lot funded from issuance (or, paid, from payments); it first repays captured
    overdraft debt, if any."""
    existing = state.grant_keys.get((op.customer_id, op.idempotency_key))
    if existing is not None:
        _same_arguments(
            "grant",
            op.idempotency_key,
            {
                "amount": (existing.amount, op.amount),
                "currency": (existing.currency, op.currency),
                "expires_at": (existing.expires_at, op.expires_at),
                "priority": (existing.priority, op.priority),
                "source": (existing.source, op.source),
                "description": (existing.description, op.description),
            },
            grant_id=existing.id,
        )
        return replace(existing.grant_view(), replayed=True)
    lot = state.create_account(
        Account(
            id=new_id("acct"),
            customer_id=op.customer_id,
            currency=op.currency,
            kind=AccountKind.GRANT.value,
            balance=0,
            lower_bound=0,
            amount=op.amount,
            expires_at=op.expires_at,
            priority=op.priority,
            source=op.source,
            description=op.description,
            idempotency_key=op.idempotency_key,
            created_at=state.now,
        )
    )
    if op.paid:
        payments = state.system(AccountKind.PAYMENTS, op.currency)
        state.transfer(payments, lot, op.amount, EntryKind.PAYMENT, description=op.description)
    else:
        issuance = state.system(AccountKind.ISSUANCE, op.currency)
        state.transfer(issuance, lot, op.amount, EntryKind.GRANT, description=op.description)
    overdraft = _overdraft(state, op.customer_id, op.currency)
    if overdraft is not None and overdraft.balance < 0:
        if overdraft.held_from is None:
            raise AssertionError("overdraft held_from not loaded for a grant")
        debt = -overdraft.balance - overdraft.held_from
        if debt > 0:
            state.transfer(
                lot,
                overdraft,
                min(debt, op.amount),
                EntryKind.OVERDRAFT,
                description="overdraft repayment",
            )
    return lot.grant_view()


def apply_revoke(state: BatchState, op: RevokeOp) -> GrantView:
    """Send a lot's unheld rest back to issuance and close it to spending (idempotent)."""
    lot = state.accounts.get(op.grant_id)
    if (
        lot is None
        or lot.kind != AccountKind.GRANT
        or (op.customer_id is not None and lot.customer_id != op.customer_id)
    ):
        raise GrantNotFound(f"no grant {op.grant_id!r}", grant_id=op.grant_id)
    if lot.revoked_at is not None:
        return lot.grant_view()
    state.set(lot, "revoked_at", state.now)
    state.set(lot, "meta_dirty", True)
    if lot.balance > 0:
        state.transfer(
            lot,
            state.system(AccountKind.ISSUANCE, lot.currency),
            lot.balance,
            EntryKind.REVOKE,
            description="grant revoked",
        )
    return lot.grant_view()


def apply_reverse(state: BatchState, op: ReverseOp) -> ReversalView:
    """Move up to `op.amount` of a lot's rest back to the account that funded it, as one
    transfer whose id is `op.transfer_id`; a replay (the transfer exists) moves nothing."""
    lot = state.accounts.get(op.grant_id)
    if (
        lot is None
        or lot.kind != AccountKind.GRANT
        or (op.customer_id is not None and lot.customer_id != op.customer_id)
    ):
        raise GrantNotFound(f"no grant {op.grant_id!r}", grant_id=op.grant_id)
    done = state.reversals.get(op.transfer_id)
    if done is not None:
        return ReversalView(lot.id, op.amount, done, op.transfer_id, replayed=True)
    take = min(op.amount, max(lot.balance, 0))
    if take:
        funding = AccountKind.PAYMENTS if lot.id in state.paid_lots else AccountKind.ISSUANCE
        state.transfer(
            lot,
            state.system(funding, lot.currency),
            take,
            EntryKind.REFUND,
            description=op.description,
            transfer_id=op.transfer_id,
        )
        state.reversals[op.transfer_id] = take
    return ReversalView(lot.id, op.amount, take, op.transfer_id)


def apply_overdraft(state: BatchState, op: OverdraftOp) -> int:
    """Set the credit line to `op.limit` micros. A lower limit never touches existing debt.

    The line's `amount` keeps the highest limit ever set (what `check_invariants` bounds the
    line by, since a lowered limit may leave the balance below the current bound)."""
    overdraft = _overdraft(state, op.customer_id, op.currency)
    if overdraft is None:
        state.create_account(
            Account(
                id=account_id_for(AccountKind.OVERDRAFT, op.currency, op.customer_id),
                customer_id=op.customer_id,
                currency=op.currency,
                kind=AccountKind.OVERDRAFT.value,
                balance=0,
                lower_bound=-op.limit,
                amount=op.limit,
                created_at=state.now,
                held_from=0,
            )
        )
    elif overdraft.lower_bound != -op.limit:
        state.set(overdraft, "lower_bound", -op.limit)
        highest = (
            overdraft.amount if overdraft.amount is not None else -(overdraft.lower_bound or 0)
        )
        state.set(overdraft, "amount", max(highest, op.limit))
        state.set(overdraft, "meta_dirty", True)
    return op.limit


def apply_sweep(state: BatchState, op: SweepCustomerOp) -> SweepResult:
    """Expire the customer's open holds past expiry, then the rest of expired lots."""
    expired_holds = 0
    for hold in list(state.holds.values()):
        if (
            hold.customer_id == op.customer_id
            and hold.currency == op.currency
            and hold.status == HoldStatus.OPEN
            and hold.expires_at <= op.now
        ):
            _release_all(state, hold, HoldStatus.EXPIRED)
            expired_holds += 1
    expired_grants = expired_micros = 0
    for lot in list(state.by_customer.get(op.customer_id, ())):
        if lot.kind != AccountKind.GRANT or lot.currency != op.currency or lot.balance <= 0:
            continue
        if lot.expires_at is not None and lot.expires_at <= op.now:
            expired_grants += 1
            expired_micros += lot.balance
            state.transfer(
                lot,
                state.system(AccountKind.EXPIRED, lot.currency),
                lot.balance,
                EntryKind.EXPIRE,
                description="grant expired",
            )
    return SweepResult(
        expired_grants=expired_grants,
        expired_micros=expired_micros,
        expired_holds=expired_holds,
    )
