"""Money is an `int` count of micros (1 USD = 1,000,000 micros). No float ever holds money.

Prices below a micro (a token at $0.15 per 1M is 0.15 micros) are `Decimal` rates; a charge is
computed from the whole quantity and rounded **once, up to the next whole micro** (ROUND_CEILING)
when it is written, so that a charge is never below its exact value and never negative.
"""

from __future__ import annotations

from decimal import ROUND_CEILING, Decimal, InvalidOperation

MICROS_PER_UNIT = 1_000_000
"""Micros in one unit of the currency (one dollar)."""


def to_micros(amount: str | int | Decimal) -> int:
    """Convert a decimal currency amount (`"1.25"` dollars) to micros, exactly.

    Raises:
        ValueError: not a number, or finer than a micro (`"0.0000001"`).
    """
    try:
        value = Decimal(str(amount)) * MICROS_PER_UNIT
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal amount: {amount!r}") from exc
    if not value.is_finite() or value != value.to_integral_value():
        raise ValueError(f"amount {amount!r} is not a whole number of micros")
    return int(value)


def rate_to_micros(rate: Decimal) -> Decimal:
    """A per-unit currency rate (dollars per token) as micros per unit (may be fractional)."""
    return rate * MICROS_PER_UNIT


def charge(quantity: int | Decimal, micros_per_unit: Decimal) -> int:
    """`quantity * micros_per_unit`, rounded up to a whole micro (the one rounding rule).

    Raises:
        ValueError: negative quantity or rate.
    """
    if quantity < 0 or micros_per_unit < 0:
        raise ValueError("charges are never negative")
    return int((Decimal(quantity) * micros_per_unit).to_integral_value(rounding=ROUND_CEILING))


def format_micros(micros: int, currency: str = "usd") -> str:
    """`1_250_000` -> `"1.250000 USD"`: exact, for tables and logs."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_UNIT)
    return f"{sign}{whole}.{frac:06d} {currency.upper()}"
