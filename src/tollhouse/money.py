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


def decimal_string(micros: int) -> str:
    """`1_250_000` -> `"1.25"`, `-37_500` -> `"-0.0375"`: the amount in currency units as a
    plain decimal (no separators, no currency; as many decimals as the micros need, two at
    least), exact: for machine-read exports (CSV)."""
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS_PER_UNIT)
    return f"{sign}{whole}.{f'{fraction:06d}'.rstrip('0').ljust(2, '0')}"


def format_amount(micros: int, currency: str) -> str:
    """`12_340_000, "usd"` -> `12.34 USD`; thousands separated, two decimals at least and
    as many more as the micros need (`37_500` -> `0.0375 USD`): exact, never rounded, for
    people (invoices, the dashboard)."""
    sign = "-" if micros < 0 else ""
    whole, fraction = divmod(abs(micros), MICROS_PER_UNIT)
    decimals = f"{fraction:06d}".rstrip("0").ljust(2, "0")
    return f"{sign}{whole:,}.{decimals} {currency.upper()}"


ZERO_DECIMAL_CURRENCIES = frozenset(
    {"bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv"}
    | {"xaf", "xof", "xpf"}
)
"""Currencies whose smallest unit is the whole unit (Stripe's "zero-decimal currencies")."""
THREE_DECIMAL_CURRENCIES = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
"""Currencies with three decimals (Stripe's "three-decimal currencies")."""


def minor_unit_digits(currency: str) -> int:
    """Decimals of `currency`'s smallest unit as payment providers count it (ISO 4217 minor
    units, as Stripe lists them): 0 for `jpy`, 3 for `kwd`, 2 for the rest (`usd` cents)."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        return 0
    return 3 if currency in THREE_DECIMAL_CURRENCIES else 2


def to_minor_units(micros: int, currency: str) -> int:
    """`micros` in `currency`'s smallest unit (`1_250_000` usd -> 125 cents), exactly.

    Raises:
        ValueError: `micros` is not a whole number of that unit (`1_234_567` usd).
    """
    units, rest = divmod(micros, _micros_per_minor_unit(currency))
    if rest:
        raise ValueError(f"{micros} micros is not a whole number of {currency} minor units")
    return units


def from_minor_units(amount: int, currency: str) -> int:
    """An amount in `currency`'s smallest unit (Stripe's `amount`) as micros."""
    return amount * _micros_per_minor_unit(currency)


def _micros_per_minor_unit(currency: str) -> int:
    digits = minor_unit_digits(currency)
    return MICROS_PER_UNIT // (1 if digits == 0 else 1000 if digits == 3 else 100)
