"""Proration after Stripe's model: exact micros, each line rounded once, half to even."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tollhouse.subscriptions.proration import prorate, prorate_amount, prorate_credits

MARCH_START = datetime(2026, 3, 1, tzinfo=UTC)
MARCH_END = datetime(2026, 4, 1, tzinfo=UTC)  # 31 days = 2,678,400 s
MID_MARCH = datetime(2026, 3, 15, 12, tzinfo=UTC)  # 16.5 days left = 1,425,600 s (33/62)
BASIC_MICROS = 9_000_000
PRO_MICROS = 29_000_000


class TestProrate:
    def test_upgrade_in_the_middle_of_a_31_day_month(self) -> None:
        lines = prorate(
            old_price_micros=BASIC_MICROS,
            new_price_micros=PRO_MICROS,
            period_start=MARCH_START,
            period_end=MARCH_END,
            at=MID_MARCH,
        )
        assert lines.period_seconds == 2_678_400
        assert lines.remaining_seconds == 1_425_600
        # 9,000,000 * 33/62 = 4,790,322.58...  -> 4,790,323
        assert lines.credit_micros == -4_790_323
        # 29,000,000 * 33/62 = 15,435,483.87... -> 15,435,484
        assert lines.charge_micros == 15_435_484
        assert lines.net_micros == 10_645_161

    def test_exactly_half_way_is_half_the_prices(self) -> None:
        lines = prorate(
            old_price_micros=BASIC_MICROS,
            new_price_micros=PRO_MICROS,
            period_start=MARCH_START,
            period_end=MARCH_END,
            at=datetime(2026, 3, 16, 12, tzinfo=UTC),
        )
        assert (lines.credit_micros, lines.charge_micros) == (-4_500_000, 14_500_000)

    def test_at_period_start_is_the_whole_difference(self) -> None:
        lines = prorate(
            old_price_micros=BASIC_MICROS,
            new_price_micros=PRO_MICROS,
            period_start=MARCH_START,
            period_end=MARCH_END,
            at=MARCH_START,
        )
        assert lines.net_micros == PRO_MICROS - BASIC_MICROS

    def test_sub_second_part_of_the_change_time_is_dropped(self) -> None:
        lines = prorate(
            old_price_micros=0,
            new_price_micros=PRO_MICROS,
            period_start=MARCH_START,
            period_end=MARCH_END,
            at=MID_MARCH.replace(microsecond=999_999),
        )
        assert lines.remaining_seconds == 1_425_599

    def test_negative_price_is_rejected(self) -> None:
        with pytest.raises(ValueError):
            prorate(
                old_price_micros=-1,
                new_price_micros=0,
                period_start=MARCH_START,
                period_end=MARCH_END,
                at=MID_MARCH,
            )


class TestRounding:
    # 31 * 33/62 = 16.5 and 93 * 33/62 = 49.5: exact ties.
    @pytest.mark.parametrize(("amount", "expected"), [(31, 16), (93, 50), (155, 82)])
    def test_ties_round_half_to_even(self, amount: int, expected: int) -> None:
        assert prorate_amount(amount, remaining_seconds=1_425_600, period_seconds=2_678_400) == (
            expected
        )

    def test_credits_round_down(self) -> None:
        # 15,000,000 * 33/62 = 7,983,870.97...
        assert (
            prorate_credits(15_000_000, remaining_seconds=1_425_600, period_seconds=2_678_400)
            == 7_983_870
        )

    def test_remaining_beyond_the_period_is_rejected(self) -> None:
        with pytest.raises(ValueError):
            prorate_amount(1, remaining_seconds=11, period_seconds=10)
