"""The operator's billing terms: number prefixes, tax rates per country, the issuer printed
on documents; and the one tax rounding rule.

Tax is a line of its own: the rate of the customer's country (ISO 3166-1 alpha-2, from
`TOLLHOUSE_TAX_RATES`) times the sum of the invoice's other lines,

    tax = round(base * rate)        to a whole micro, half to even (ROUND_HALF_EVEN)

computed exactly (`Decimal` over integer micros) and rounded once, like the prorations
(`subscriptions.proration`). A customer without a country, or whose country has no rate,
gets no tax line.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from types import MappingProxyType

from tollhouse.billing.models import DocumentKind
from tollhouse.config import Settings

TAX_ROUNDING = ROUND_HALF_EVEN
"""How a tax line is rounded to a whole micro."""


def tax_micros(base_micros: int, rate: Decimal) -> int:
    """`base * rate`, exact, rounded once to a whole micro, half to even. Signed like the
    base (a negative base, a credit, gives negative tax)."""
    return int((Decimal(base_micros) * rate).to_integral_value(rounding=TAX_ROUNDING))


def _no_rates() -> Mapping[str, Decimal]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class BillingTerms:
    """What the operator configured (`Settings`: `TOLLHOUSE_INVOICE_NUMBER_PREFIX`,
    `TOLLHOUSE_CREDIT_NOTE_NUMBER_PREFIX`, `TOLLHOUSE_TAX_RATES`, `TOLLHOUSE_INVOICE_ISSUER`)."""

    invoice_prefix: str = "TH-"
    credit_note_prefix: str = "CN-"
    tax_rates: Mapping[str, Decimal] = field(default_factory=_no_rates, hash=False)
    """Country (alpha-2) -> rate, a decimal fraction (`0.19` is 19 %)."""
    issuer: str = ""
    """Who issues the documents (name, address), printed at their top; may be empty."""

    @classmethod
    def from_settings(cls, settings: Settings) -> BillingTerms:
        """The terms `settings` configure (validated there)."""
        return cls(
            invoice_prefix=settings.invoice_number_prefix,
            credit_note_prefix=settings.credit_note_number_prefix,
            tax_rates=MappingProxyType(dict(settings.tax_rates)),
            issuer=settings.invoice_issuer,
        )

    def prefix(self, kind: DocumentKind) -> str:
        """The number prefix of `kind`'s series."""
        return self.invoice_prefix if kind == DocumentKind.INVOICE else self.credit_note_prefix

    def tax_rate(self, country: str | None) -> Decimal | None:
        """The rate for `country`; None without a country or a rate for it."""
        return None if country is None else self.tax_rates.get(country)


def format_number(prefix: str, sequence: int) -> str:
    """`TH-000001`: the prefix, then the number with at least six digits."""
    return f"{prefix}{sequence:06d}"
