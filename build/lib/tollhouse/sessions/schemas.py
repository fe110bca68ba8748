"""What the sessions service answers: immutable views of its rows, computed at a moment."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tollhouse.sessions.billing import run_cost
from tollhouse.sessions.models import Session, SessionKind, SessionPack


@dataclass(frozen=True, slots=True)
class SessionView:
    """A session as of `now`. Money in micros of `currency`.

    `seconds_left` is `None` without a duration cap and 0 once ended; `tokens_left` is `None`
    without a token cap and 0 once ended. `auto_renew`: a cap ending it starts the next one
    (on the next call it would have covered).

    Metered sessions also have `resource_tier`, `rate_micros_per_hour`, `paid_until` and
    `last_heartbeat_at` (`None` on flat ones). `cost_micros` is what the session costs as of
    `now`: a flat session's fee; a running metered session's cost of its run so far (capped
    at `paid_until`, `sessions.billing`), its `billed_micros` once ended. `settled_at` is
    when an ended metered session's holds were captured and released.
    """

    id: str
    customer_id: str
    kind: str
    product: str
    status: str
    started_at: datetime
    expires_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None
    token_cap: int | None
    tokens_used: int
    tokens_left: int | None
    seconds_left: int | None
    fee_micros: int
    currency: str
    paid_with: str
    pack_id: str | None
    hold_id: str | None
    auto_renew: bool
    resource_tier: str | None
    rate_micros_per_hour: int | None
    paid_until: datetime | None
    last_heartbeat_at: datetime | None
    cost_micros: int
    billed_micros: int | None
    settled_at: datetime | None

    @classmethod
    def of(cls, row: Session, now: datetime, *, tokens_used: int | None = None) -> SessionView:
        """The view of a `sessions` row at `now` (seconds left rounded down); `tokens_used`
        (counted from the usage events) replaces the row's count of an active session."""
        active = row.status == "active"
        used = row.tokens_used if tokens_used is None else tokens_used
        seconds_left: int | None = None
        if row.expires_at is not None:
            seconds_left = max(0, int((row.expires_at - now).total_seconds())) if active else 0
        tokens_left: int | None = None
        if row.token_cap is not None:
            tokens_left = max(0, row.token_cap - used) if active else 0
        return cls(
            id=row.id,
            customer_id=row.customer_id,
            kind=row.kind,
            product=row.product,
            status=row.status,
            started_at=row.started_at,
            expires_at=row.expires_at,
            ended_at=row.ended_at,
            end_reason=row.end_reason,
            token_cap=row.token_cap,
            tokens_used=used,
            tokens_left=tokens_left,
            seconds_left=seconds_left,
            fee_micros=row.fee_micros,
            currency=row.currency,
            paid_with=row.paid_with,
            pack_id=row.pack_id,
            hold_id=row.hold_id,
            auto_renew=bool(row.auto_renew),
            resource_tier=row.resource_tier,
            rate_micros_per_hour=row.rate_micros_per_hour,
            paid_until=row.paid_until,
            last_heartbeat_at=row.last_heartbeat_at,
            cost_micros=_cost(row, now),
            billed_micros=row.billed_micros,
            settled_at=row.settled_at,
        )


def _cost(row: Session, now: datetime) -> int:
    if row.kind != SessionKind.METERED:
        return row.fee_micros
    if row.billed_micros is not None:
        return row.billed_micros
    assert row.paid_until is not None and row.rate_micros_per_hour is not None
    return run_cost(row.started_at, min(now, row.paid_until), row.rate_micros_per_hour)


@dataclass(frozen=True, slots=True)
class PackView:
    """A pack bought: `sessions_left` of `sessions` not yet started."""

    id: str
    customer_id: str
    product: str
    sessions: int
    sessions_left: int
    price_micros: int
    currency: str
    hold_id: str
    created_at: datetime

    @classmethod
    def of(cls, row: SessionPack) -> PackView:
        """The view of a `session_packs` row."""
        return cls(
            id=row.id,
            customer_id=row.customer_id,
            product=row.product,
            sessions=row.sessions,
            sessions_left=row.sessions_left,
            price_micros=row.price_micros,
            currency=row.currency,
            hold_id=row.hold_id,
            created_at=row.created_at,
        )


@dataclass(frozen=True, slots=True)
class Started:
    """The answer to a start: the session, and whether this was a replay of an earlier start
    with the same idempotency key (nothing charged again)."""

    session: SessionView
    replayed: bool


@dataclass(frozen=True, slots=True)
class Bought:
    """The answer to a pack purchase; `replayed` as in `Started`."""

    pack: PackView
    replayed: bool


@dataclass(frozen=True, slots=True)
class Quota:
    """Prepaid sessions of one product not yet started."""

    product: str
    sessions_left: int


@dataclass(frozen=True, slots=True)
class Estimate:
    """What a metered session on `resource_tier` would cost, for the customer's `plan`.

    `cost_micros` is the cost of running `duration_seconds` (`sessions.billing`);
    `start_hold_micros` what a start holds (its minimum run, `min_run_seconds`) and
    `slice_micros` what each further slice of `slice_seconds` holds, about.
    """

    resource_tier: str
    plan: str
    rate_micros_per_hour: int
    duration_seconds: int
    cost_micros: int
    min_run_seconds: int
    start_hold_micros: int
    slice_seconds: int
    slice_micros: int
    currency: str


@dataclass(frozen=True, slots=True)
class ReapReport:
    """What one reaper pass did: sessions it ended (by reason), ended sessions it settled,
    flat-session fees whose orphaned hold it captured, and the slices it extended or
    captured as used up (`tick` only)."""

    ended: dict[str, int]
    settled: int = 0
    fees_captured: int = 0
    extended: int = 0
    captured: int = 0
