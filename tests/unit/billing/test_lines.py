"""An invoice's lines from what it bills, and the tax rule: pure arithmetic, no database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from tollhouse.billing.lines import invoice_lines, tax_line
from tollhouse.billing.models import DocumentKind, LineKind
from tollhouse.billing.terms import BillingTerms, format_number, tax_micros
from tollhouse.money import format_amount

START = datetime(2026, 4, 15, tzinfo=UTC)
END = datetime(2026, 5, 15, tzinfo=UTC)


@dataclass(frozen=True)
class Charge:
    kind: str
    amount_micros: int
    description: str = "basic"
    period_start: datetime = START
    period_end: datetime = END
    idempotency_key: str = "fee"


@dataclass(frozen=True)
class Purchase:
    kind: str
    id: str
    product: str
    sessions: int
    amount_micros: int


class TestTax:
    @pytest.mark.parametrize(
        ("base", "rate", "tax"),
        [
            (9_000_000, "0.19", 1_710_000),
            (2_500_005, "0.1", 250_000),  # 250,000.5 -> the even neighbour below
            (2_500_015, "0.1", 250_002),  # 250,001.5 -> the even neighbour above
            (-2_500_015, "0.1", -250_002),  # a credit is taxed like a charge, negated
            (1, "0.0825", 0),
        ],
    )
    def test_tax_is_rounded_once_half_to_even(self, base: int, rate: str, tax: int) -> None:
        assert tax_micros(base, Decimal(rate)) == tax

    def test_the_line_names_the_country_and_rate(self) -> None:
        lines = invoice_lines([Charge("subscription_fee", 10_000_000)], [], country="US",
                              rate=Decimal("0.0825"))  # fmt: skip
        assert [(line.description, line.amount_micros) for line in lines[1:]] == [
            ("Tax US 8.25%", 825_000)
        ]

    def test_no_country_or_no_rate_or_nothing_to_tax_is_no_line(self) -> None:
        fee = invoice_lines([Charge("subscription_fee", 1)], [], country=None, rate=None)
        assert [line.kind for line in fee] == [LineKind.SUBSCRIPTION_FEE]
        assert tax_line(fee, country="DE", rate=None) is None
        assert tax_line([], country="DE", rate=Decimal("0.19")) is None


class TestLines:
    def test_purchases_are_grouped_by_product_and_price_and_netted_by_credits(self) -> None:
        purchases = [
            Purchase("session_fee", "ses_1", "day", 1, 1_000_000),
            Purchase("session_pack", "spk_1", "day", 5, 4_500_000),
            Purchase("session_fee", "ses_2", "day", 1, 1_000_000),
            Purchase("session_fee", "ses_3", "hour", 1, 250_000),
        ]
        lines = invoice_lines(
            [Charge("proration_credit", -3_000_000), Charge("proration_charge", 9_666_667)],
            purchases,
            country="DE",
            rate=Decimal("0.19"),
        )

        assert [
            (li.kind, li.quantity, li.unit_amount_micros, li.amount_micros) for li in lines
        ] == [
            (LineKind.PRORATION_CREDIT, 1, -3_000_000, -3_000_000),
            (LineKind.PRORATION_CHARGE, 1, 9_666_667, 9_666_667),
            (LineKind.SESSION_FEE, 2, 1_000_000, 2_000_000),
            (LineKind.SESSION_PACK, 1, 4_500_000, 4_500_000),
            (LineKind.SESSION_FEE, 1, 250_000, 250_000),
            (LineKind.CREDITS_APPLIED, 1, -6_750_000, -6_750_000),
            (LineKind.TAX, 1, 1_266_667, 1_266_667),  # 19 % of 6,666,667 = 1,266,666.73
        ]
        assert lines[0].period_start == START and lines[2].period_start is None

    def test_nothing_to_bill_is_no_line(self) -> None:
        assert invoice_lines([], [], country="DE", rate=Decimal("0.19")) == []


class TestFormats:
    @pytest.mark.parametrize(
        ("micros", "shown"),
        [
            (34_510_000, "34.51 USD"),
            (37_500, "0.0375 USD"),
            (1_234_567_890_123, "1,234,567.890123 USD"),
            (-1_000_000, "-1.00 USD"),
            (0, "0.00 USD"),
        ],
    )
    def test_amounts_are_exact(self, micros: int, shown: str) -> None:
        assert format_amount(micros, "usd") == shown

    def test_numbers_have_six_digits_at_least_and_their_series_prefix(self) -> None:
        terms = BillingTerms(invoice_prefix="INV-", credit_note_prefix="")
        assert format_number(terms.prefix(DocumentKind.INVOICE), 42) == "INV-000042"
        assert format_number(terms.prefix(DocumentKind.CREDIT_NOTE), 1_234_567) == "1234567"
