"""What a metered (compute) session costs, and how its cost is split over its slice holds.

The rule, stated once and applied once, to the whole run (never per slice):

    billed_seconds = ceil(ended_at - started_at)                      whole seconds, up
    cost_micros    = ceil(billed_seconds * rate_micros_per_hour / 3600)  whole micros, up

in integer arithmetic (no float, no Decimal division), rounding up as every charge in
tollhouse does (`tollhouse.money`: a charge is never below its exact value). Examples: 1,800 s
at $0.075/h (75,000 micros/h) is exactly 37,500 micros; 1 s at the same rate is 20.83...,
billed 21 micros; 3,599.2 s is billed as 3,600 s.

Slices: a session's paid time is cut into slices, each one ledger hold. Slice `k` covers
`[start_k, end_k)` seconds after the start and holds `cost(end_k) - cost(start_k)`: the
holds of slices 1..k add up to exactly `cost(end_k)`, the cost of running until `end_k`.
So a bill for any run that ends within the paid time is covered by the holds, and
`allocate` (fill the earliest slices first) gives every slice that was used up in full its
whole amount: capturing a used-up slice early is the same capture the final bill makes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

SECONDS_PER_HOUR = 3600
_MICROSECOND = timedelta(microseconds=1)


def cost_micros(seconds: int, rate_micros_per_hour: int) -> int:
    """The cost of `seconds` whole seconds at `rate_micros_per_hour`, rounded up to a micro.

    Raises:
        ValueError: a negative duration or rate.
    """
    if seconds < 0 or rate_micros_per_hour < 0:
        raise ValueError("durations and rates are never negative")
    return -(-seconds * rate_micros_per_hour // SECONDS_PER_HOUR)


def billed_seconds(started_at: datetime, ended_at: datetime) -> int:
    """Whole seconds from `started_at` to `ended_at`, a started second counting whole
    (rounded up; 0 when `ended_at` is not after `started_at`)."""
    microseconds = (ended_at - started_at) // _MICROSECOND
    return max(0, -(-microseconds // 1_000_000))


def run_cost(started_at: datetime, ended_at: datetime, rate_micros_per_hour: int) -> int:
    """`cost_micros` of the run from `started_at` to `ended_at` (the module's rule)."""
    return cost_micros(billed_seconds(started_at, ended_at), rate_micros_per_hour)


def slice_micros(start_seconds: int, end_seconds: int, rate_micros_per_hour: int) -> int:
    """What the slice `[start_seconds, end_seconds)` after a session's start holds:
    `cost(end) - cost(start)`, so that consecutive slices add up to the cost of their span.

    Raises:
        ValueError: `end_seconds` < `start_seconds`, or a negative value.
    """
    if end_seconds < start_seconds:
        raise ValueError("a slice ends after it starts")
    return cost_micros(end_seconds, rate_micros_per_hour) - cost_micros(
        start_seconds, rate_micros_per_hour
    )


def allocate(total_micros: int, amounts: Sequence[int]) -> list[int]:
    """Split `total_micros` over holds of `amounts` in order, filling the earliest first:
    `[min(a_1, total), min(a_2, rest), ..., 0, 0]`.

    Raises:
        ValueError: `total_micros` is negative or more than the holds add up to.
    """
    if not 0 <= total_micros <= sum(amounts):
        raise ValueError(f"{total_micros} micros cannot be taken from holds of {sum(amounts)}")
    shares: list[int] = []
    rest = total_micros
    for amount in amounts:
        share = min(amount, rest)
        shares.append(share)
        rest -= share
    return shares
