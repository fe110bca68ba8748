"""Billing periods: calendar months in the customer's zone, anchor clamping, DST, leap years."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tollhouse.subscriptions.periods import (
    anchored_date,
    first_period,
    local_midnight,
    next_period,
    period_bounds,
)

ZONES = ["UTC", "America/New_York", "Asia/Tokyo", "Europe/London", "Australia/Lord_Howe"]


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


class TestAnchorClamping:
    def test_anchor_31_clamps_each_month_and_stays_31(self) -> None:
        starts = []
        start, end = period_bounds(31, "UTC", utc(2026, 1, 31, 5))
        for _ in range(6):
            starts.append(start.date())
            start, end = next_period(31, "UTC", end)
        assert starts == [
            date(2026, 1, 31),
            date(2026, 2, 28),
            date(2026, 3, 31),
            date(2026, 4, 30),
            date(2026, 5, 31),
            date(2026, 6, 30),
        ]

    def test_anchor_31_gives_february_29_in_a_leap_year(self) -> None:
        assert period_bounds(31, "UTC", utc(2028, 2, 10)) == (utc(2028, 1, 31), utc(2028, 2, 29))
        assert next_period(31, "UTC", utc(2028, 2, 29)) == (utc(2028, 2, 29), utc(2028, 3, 31))

    def test_anchor_29_in_february_of_a_common_year(self) -> None:
        assert anchored_date(2026, 2, 29) == date(2026, 2, 28)
        assert anchored_date(2024, 2, 29) == date(2024, 2, 29)

    def test_a_31_day_month_period_is_31_days(self) -> None:
        start, end = period_bounds(1, "UTC", utc(2026, 3, 15, 12))
        assert (start, end) == (utc(2026, 3, 1), utc(2026, 4, 1))
        assert end - start == timedelta(days=31)

    def test_moment_before_this_months_anchor_is_in_last_months_period(self) -> None:
        assert period_bounds(20, "UTC", utc(2026, 3, 19, 23, 59)) == (
            utc(2026, 2, 20),
            utc(2026, 3, 20),
        )

    def test_yearly_period_from_february_29(self) -> None:
        start, end = period_bounds(29, "UTC", utc(2024, 3, 1), "year", anchor_month=2)
        assert (start, end) == (utc(2024, 2, 29), utc(2025, 2, 28))
        assert next_period(29, "UTC", end, "year") == (utc(2025, 2, 28), utc(2026, 2, 28))

    def test_anchor_out_of_range_is_rejected(self) -> None:
        with pytest.raises(ValueError):
            period_bounds(32, "UTC", utc(2026, 1, 1))

    def test_naive_moment_is_rejected(self) -> None:
        with pytest.raises(ValueError):
            period_bounds(1, "UTC", datetime(2026, 1, 1))


class TestTimeZones:
    def test_new_york_period_starts_at_local_midnight(self) -> None:
        start, end = period_bounds(1, "America/New_York", utc(2026, 3, 15))
        assert start == utc(2026, 3, 1, 5)  # EST, UTC-5
        assert end == utc(2026, 4, 1, 4)  # EDT, UTC-4: the March period is one hour short
        assert end - start == timedelta(days=31, hours=-1)

    def test_tokyo_period_starts_the_day_before_in_utc(self) -> None:
        start, end = period_bounds(1, "Asia/Tokyo", utc(2026, 3, 15))
        assert (start, end) == (utc(2026, 2, 28, 15), utc(2026, 3, 31, 15))

    def test_moment_just_before_local_midnight_belongs_to_the_old_period(self) -> None:
        # 2026-04-01 03:59 UTC is still March 31 in New York.
        start, _ = period_bounds(1, "America/New_York", utc(2026, 4, 1, 3, 59))
        assert start == utc(2026, 3, 1, 5)

    def test_dst_skipping_midnight_starts_at_the_first_instant_of_the_day(self) -> None:
        santiago = ZoneInfo("America/Santiago")  # 2026-09-06: 00:00 -> 01:00
        start = local_midnight(date(2026, 9, 6), santiago)
        assert start.astimezone(santiago).date() == date(2026, 9, 6)
        assert start == utc(2026, 9, 6, 4)

    def test_first_period_starts_at_the_given_instant(self) -> None:
        assert first_period(15, "UTC", utc(2026, 3, 15, 12)) == (
            utc(2026, 3, 15, 12),
            utc(2026, 4, 15),
        )


class TestProperties:
    """Over every day of 2023-2028 in several zones (DST on both hemispheres)."""

    @pytest.mark.parametrize("tz_name", ZONES)
    @pytest.mark.parametrize("anchor", [1, 15, 28, 29, 30, 31])
    def test_periods_tile_time_and_contain_the_moment(self, tz_name: str, anchor: int) -> None:
        tz = ZoneInfo(tz_name)
        moment = utc(2023, 1, 1, 7, 30)
        while moment < utc(2029, 1, 1):
            start, end = period_bounds(anchor, tz, moment)
            assert start <= moment < end
            local_start = start.astimezone(tz)
            assert (local_start.hour, local_start.minute) == (0, 0)
            assert local_start.day == min(anchor, _month_days(local_start.year, local_start.month))
            following = next_period(anchor, tz, end)
            assert following[0] == end  # no gap, no overlap
            assert period_bounds(anchor, tz, end) == following
            assert 27 <= (end - start).days <= 31
            moment += timedelta(days=1, hours=5)

    @pytest.mark.parametrize("tz_name", ZONES)
    def test_twelve_monthly_rolls_make_a_year(self, tz_name: str) -> None:
        start, end = period_bounds(31, tz_name, utc(2027, 1, 31, 18))
        first = start
        for _ in range(12):
            _, end = next_period(31, tz_name, end)
        assert next_period(31, tz_name, end)[0].astimezone(ZoneInfo(tz_name)).date() == (
            first.astimezone(ZoneInfo(tz_name)).date().replace(year=2028, month=2, day=29)
        )


def _month_days(year: int, month: int) -> int:
    import calendar

    return calendar.monthrange(year, month)[1]
