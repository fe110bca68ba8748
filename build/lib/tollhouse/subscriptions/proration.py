"""Prorations on an upgrade, after Stripe's model (Stripe docs, *Prorations*,
https://docs.stripe.com/billing/subscriptions/prorations).

When a plan changes at time `t` inside the period `[start, end)`, Stripe writes two invoice
items: a credit for the unused time on the old price and a charge for the remaining time on
the new price, both scaled by the fraction of the period left:

    remaining = (end - t) / (end - start)           time in whole seconds
    credit    = -round(old_price * remaining)       proration_credit  (<= 0)
    charge    = +round(new_price * remaining)       proration_charge  (>= 0)
    net       = charge + credit

Arithmetic is exact (`Decimal` over integer micros and integer seconds; never float). Each
line is rounded **once**, to a whole micro, **half to even** (`ROUND_HALF_EVEN`, banker's
rounding): an exact tie (x.5 micro) goes to the even neighbour, so ties do not bias the
totals either way over many prorations. The net is the sum of the two rounded lines, so the
invoice adds up. Seconds are counted with the sub-second part dropped (Stripe works on Unix
timestamps in seconds).

The same fraction prorates included credits on an upgrade (`prorate_amount`), but rounded
down: never grant a fraction of a micro that was not paid for.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from tollhouse.subscriptions.periods import seconds_between

ROUNDING = ROUND_HALF_EVEN
"""How each proration line is rounded to a whole micro."""


@dataclass(frozen=True, slots=True)
class Proration:
    """The two lines of a plan change at `at` and their sum, in micros."""

    credit_micros: int
    """<= 0: the unused part of the old price."""
    charge_micros: int
    """>= 0: the new price for the rest of the period."""
    remaining_seconds: int
    """Whole seconds from the change to the period end."""
    period_seconds: int
    """Whole seconds of the period."""

    @property
    def net_micros(self) -> int:
        """`charge + credit`: what the customer owes for the change (negative = owed to them)."""
        return self.charge_micros + self.credit_micros


def prorate_amount(
    amount_micros: int,
    *,
    remaining_seconds: int,
    period_seconds: int,
    rounding: str = ROUNDING,
) -> int:
    """`amount * remaining / period`, exact, rounded once to a whole micro by `rounding`.

    Raises:
        ValueError: `period_seconds <= 0`, or `remaining_seconds` outside 0..period_seconds.
    """
    if period_seconds <= 0:
        raise ValueError("period_seconds must be > 0")
    if not 0 <= remaining_seconds <= period_seconds:
        raise ValueError("remaining_seconds must be within 0..period_seconds")
    exact = Decimal(amount_micros) * Decimal(remaining_seconds) / Decimal(period_seconds)
    return int(exact.to_integral_value(rounding=rounding))


def prorate_credits(amount_micros: int, *, remaining_seconds: int, period_seconds: int) -> int:
    """Included credits for the rest of a period: prorated, rounded down."""
    return prorate_amount(
        amount_micros,
        remaining_seconds=remaining_seconds,
        period_seconds=period_seconds,
        rounding=ROUND_FLOOR,
    )


def prorate(
    *,
    old_price_micros: int,
    new_price_micros: int,
    period_start: datetime,
    period_end: datetime,
    at: datetime,
) -> Proration:
    """The proration lines of changing price at `at` within `[period_start, period_end)`.

    `at` is clamped into the period. Prices are per period, in micros (>= 0).

    Raises:
        ValueError: empty period or a negative price.
    """
    if old_price_micros < 0 or new_price_micros < 0:
        raise ValueError("prices are never negative")
    period = seconds_between(period_start, period_end)
    if period <= 0:
        raise ValueError("the period is empty")
    clamped = min(max(at, period_start), period_end)
    remaining = min(period, seconds_between(clamped, period_end))
    credit = prorate_amount(old_price_micros, remaining_seconds=remaining, period_seconds=period)
    charge = prorate_amount(new_price_micros, remaining_seconds=remaining, period_seconds=period)
    return Proration(
        credit_micros=-credit,
        charge_micros=charge,
        remaining_seconds=remaining,
        period_seconds=period,
    )
