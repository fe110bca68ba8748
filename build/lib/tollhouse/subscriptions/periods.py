"""Billing periods: calendar months (or years) in the customer's time zone. Pure functions.

A period runs from local midnight of the anchor day to local midnight of the anchor day one
interval later, converted to UTC. A month is a calendar month, not 30 days. An anchor day
the month does not have (29, 30, 31) is clamped to the month's last day, and the anchor
itself stays: anchored on the 31st, periods start Jan 31, Feb 28 (29 in leap years), Mar 31,
Apr 30, May 31. This is Stripe's rule for a `billing_cycle_anchor` at the end of a month
("a monthly subscription with a billing cycle anchor date of January 31 bills the last day
of the month closest to the anchor date, so February 28 (or February 29 in a leap year),
then March 31, April 30, and so on"; Stripe docs, *Billing cycle*,
https://docs.stripe.com/billing/subscriptions/billing-cycle).

Local midnight is the first instant of the local day: where a DST change skips midnight
(clocks jump 00:00 -> 01:00) that is 01:00 local; where it repeats, the first 00:00. So a
period is 23 or 25 hours longer or shorter than the UTC month around a DST change, and every
period's end is exactly the next period's start (no gap, no overlap).

Plans with interval `once` (lifetime) have no billing, but quotas still count per calendar
month: their periods are months.
"""

from __future__ import annotations

import calendar
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PeriodInterval = Literal["month", "year", "once"]
"""A plan's interval; `once` counts in months."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone `name` (e.g. `America/New_York`).

    Raises:
        ValueError: unknown zone name.
    """
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r}") from exc


def anchored_date(year: int, month: int, anchor_day: int) -> date:
    """The day `anchor_day` of the month, clamped to the month's last day (31 -> Feb 28)."""
    if not 1 <= anchor_day <= 31:
        raise ValueError("anchor_day must be 1..31")
    return date(year, month, min(anchor_day, calendar.monthrange(year, month)[1]))


def local_midnight(day: date, tz: ZoneInfo) -> datetime:
    """The first instant of local `day` in `tz`, as a UTC datetime."""
    naive = datetime.combine(day, time(0))
    # fold=0 picks the offset before a transition: for a skipped midnight that instant is the
    # first one of the day (01:00 local); for a repeated midnight it is the first 00:00.
    moment = naive.replace(tzinfo=tz).astimezone(UTC)
    # A skipped midnight converts to a UTC instant that, read back, is 01:00 local: still
    # the first instant of the day. Guard against zones where fold=0 lands on the day before.
    if moment.astimezone(tz).date() < day:
        moment = naive.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return moment


def _shift_month(year: int, month: int, months: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + months
    return index // 12, index % 12 + 1


def _boundary(year: int, month: int, anchor_day: int, tz: ZoneInfo) -> datetime:
    return local_midnight(anchored_date(year, month, anchor_day), tz)


def period_bounds(
    anchor_day: int,
    tz: ZoneInfo | str,
    moment: datetime,
    interval: PeriodInterval = "month",
    *,
    anchor_month: int | None = None,
) -> tuple[datetime, datetime]:
    """The period `[start, end)` (UTC) that contains `moment`.

    `anchor_day` is 1..31; `tz` a zone or IANA name; `moment` aware. For `year`,
    `anchor_month` (1..12) is the month periods start in (default: `moment`'s local month).

    Raises:
        ValueError: naive `moment`, anchor out of range, unknown zone.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("moment must be timezone-aware")
    tz = zone(tz) if isinstance(tz, str) else tz
    local = moment.astimezone(tz)
    if interval == "year":
        month = local.month if anchor_month is None else anchor_month
        if not 1 <= month <= 12:
            raise ValueError("anchor_month must be 1..12")
        year = local.year
        start = _boundary(year, month, anchor_day, tz)
        if moment < start:
            year -= 1
            start = _boundary(year, month, anchor_day, tz)
        return start, _boundary(year + 1, month, anchor_day, tz)
    year, month = local.year, local.month
    start = _boundary(year, month, anchor_day, tz)
    if moment < start:
        year, month = _shift_month(year, month, -1)
        start = _boundary(year, month, anchor_day, tz)
    next_year, next_month = _shift_month(year, month, 1)
    return start, _boundary(next_year, next_month, anchor_day, tz)


def next_period(
    anchor_day: int, tz: ZoneInfo | str, period_end: datetime, interval: PeriodInterval = "month"
) -> tuple[datetime, datetime]:
    """The period that starts at `period_end` (a boundary): `[period_end, following end)`.

    For `year` the anchor month is `period_end`'s local month (a boundary lies in it).
    """
    tz = zone(tz) if isinstance(tz, str) else tz
    anchor_month = period_end.astimezone(tz).month if interval == "year" else None
    start, end = period_bounds(anchor_day, tz, period_end, interval, anchor_month=anchor_month)
    if start != period_end:
        # `period_end` was not on a boundary (e.g. the anchor changed): start there anyway.
        return period_end, end
    return start, end


def first_period(
    anchor_day: int, tz: ZoneInfo | str, at: datetime, interval: PeriodInterval = "month"
) -> tuple[datetime, datetime]:
    """A period that starts at `at` (a subscription's start or a plan change) and ends on
    the next boundary after it: `[at, end of the period containing at)`."""
    _, end = period_bounds(anchor_day, tz, at, interval)
    return at, end


def seconds_between(start: datetime, end: datetime) -> int:
    """Whole seconds from `start` to `end`, rounded down (>= 0)."""
    return max(0, (end - start) // timedelta(seconds=1))
