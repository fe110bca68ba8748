"""The operator console's analytics over a chosen range of UTC days: requests, revenue and
session starts per day, token usage by model, API-key adoption, refused calls (rate limits,
quotas, credits, plan) by plan from the denial log, top customers by spend. Every figure is one of the owning domain's reads over the same
usage events and ledger entries the API serves (`GET /v1/usage`, the transactions), so the
console and the API never disagree; this module only lays them out for the page.

A range is `days` (7, 30 or 90: the last that many UTC days, today included) or `start` and
`end` dates (`YYYY-MM-DD`, both included, at most `MAX_DAYS`). Charts get their series as
JSON (`<script type="application/json">`); each has a table of the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Catalog
from tollhouse.customers import service as customers
from tollhouse.dashboard.console import operator
from tollhouse.dashboard.web import page, router, runtime_of
from tollhouse.errors import InvalidInput
from tollhouse.keys import service as keys
from tollhouse.ledger import service as ledger
from tollhouse.metering import denials
from tollhouse.metering import service as metering
from tollhouse.sessions import service as sessions

RANGES = (7, 30, 90)
"""Days a range button covers."""
MAX_DAYS = 366
"""Longest range a `start`..`end` pair may span."""
KEY_USE_DAYS = 7
"""Keys used within this many days count as used."""
TOP = 10
"""Customers the top-spenders table lists."""


@dataclass(frozen=True, slots=True)
class Range:
    """Whole UTC days: `start` (midnight, included) to `end` (midnight, excluded)."""

    start: datetime
    end: datetime

    @property
    def days(self) -> list[datetime]:
        """Each day's midnight, oldest first."""
        count = (self.end - self.start).days
        return [self.start + timedelta(days=n) for n in range(count)]


def range_of(now: datetime, days: int, start: str = "", end: str = "") -> Range:
    """The range a request asks for: `start`..`end` dates (both included) when given, else
    the last `days` days (7, 30 or 90; today included).

    Raises:
        InvalidInput: a malformed date, `end` before `start`, more than `MAX_DAYS` days, or
            `days` not one of `RANGES`.
    """
    if start or end:
        try:
            first, last = date.fromisoformat(start), date.fromisoformat(end)
        except ValueError:
            raise InvalidInput(
                "start and end are dates such as 2026-12-01",
                errors=[{"loc": "start", "msg": "must be YYYY-MM-DD"}],
            ) from None
        if last < first or (last - first).days + 1 > MAX_DAYS:
            raise InvalidInput(
                f"end must be on or after start, at most {MAX_DAYS} days later",
                errors=[{"loc": "end", "msg": "out of range"}],
            )
        midnight = datetime(first.year, first.month, first.day, tzinfo=UTC)
        return Range(midnight, midnight + timedelta(days=(last - first).days + 1))
    if days not in RANGES:
        raise InvalidInput(
            f"days must be one of {', '.join(map(str, RANGES))}",
            errors=[{"loc": "days", "msg": "not a range the page offers"}],
        )
    today = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return Range(today - timedelta(days=days - 1), today + timedelta(days=1))


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())


async def figures(
    session: AsyncSession, span: Range, *, catalog: Catalog, now: datetime
) -> dict[str, Any]:
    """Everything the analytics page shows for `span` (money in micros of the catalog's
    currency; days as aware UTC midnights), and the charts' series (`charts`: Unix seconds
    of each day and one list per series, every day of the range present, 0 when idle)."""
    every_day = span.days
    meters = catalog.aggregations(["api_calls", "input_tokens", "output_tokens"])
    per_day = await metering.query_usage(
        session, customer_id=None, meters={"api_calls": meters["api_calls"]},
        start=span.start, end=span.end, window="day",
    )  # fmt: skip
    requests = {b.window_start: b.value for b in per_day}
    tokens: dict[str, dict[str, int]] = {}
    token_days: dict[str, dict[datetime, int]] = {}
    for bucket in await metering.query_usage(
        session, customer_id=None, start=span.start, end=span.end, window="day",
        group_by="model",
        meters={m: meters[m] for m in ("input_tokens", "output_tokens")},
    ):  # fmt: skip
        model = bucket.group or "-"
        per_meter = tokens.setdefault(model, {"input_tokens": 0, "output_tokens": 0})
        per_meter[bucket.meter] += bucket.value
        assert bucket.window_start is not None
        model_days = token_days.setdefault(model, {})
        model_days[bucket.window_start] = model_days.get(bucket.window_start, 0) + bucket.value
    revenue = {
        r.day: r
        for r in await ledger.revenue_by_day(
            session, currency=catalog.currency, start=span.start, end=span.end
        )
    }
    started = await sessions.started_per_day(session, start=span.start, end=span.end)
    spenders = await ledger.top_spenders(
        session, currency=catalog.currency, start=span.start, end=span.end, limit=TOP
    )
    names = {s.customer_id: (await customers.get(session, s.customer_id)).name for s in spenders}
    adoption = await keys.adoption(session, now=now, used_since=now - timedelta(days=KEY_USE_DAYS))
    customer_count = await customers.count(session)
    refused = await denials.counts_by_plan(session, start=span.start, end=span.end)
    reasons = sorted({r.reason for r in refused})
    by_plan: dict[str, dict[str, int]] = {}
    for r in refused:
        by_plan.setdefault(r.plan, dict.fromkeys(reasons, 0))[r.reason] = r.count
    daily = [
        {
            "day": day,
            "requests": requests.get(day, 0),
            "captured_micros": revenue[day].captured_micros if day in revenue else 0,
            "paid_micros": revenue[day].paid_micros if day in revenue else 0,
            "sessions": started.get(day, 0),
        }
        for day in every_day
    ]
    x = [_unix(day) for day in every_day]
    models = sorted(tokens)
    charts = {
        "requests": {"x": x, "series": {"Requests": [d["requests"] for d in daily]}},
        "revenue": {
            "x": x,
            "money": True,
            "series": {
                "Captured": [d["captured_micros"] for d in daily],
                "Paid": [d["paid_micros"] for d in daily],
            },
        },
        "sessions": {"x": x, "series": {"Sessions started": [d["sessions"] for d in daily]}},
        "tokens": {
            "x": x,
            "series": {m: [token_days[m].get(day, 0) for day in every_day] for m in models},
        },
    }
    return {
        "daily": daily,
        "tokens": [(model, tokens[model]) for model in models],
        "spenders": [(s, names[s.customer_id]) for s in spenders],
        "adoption": adoption,
        "customer_count": customer_count,
        "reasons": reasons,
        "denials": sorted(by_plan.items()),
        "charts": charts,
    }


@router.get("/console/analytics")
async def analytics_page(
    request: Request, days: int = 30, start: str = "", end: str = ""
) -> Response:
    """The analytics of a range (see the module's docstring); a bad range answers 422 with
    the form and what is wrong."""
    signed = await operator(request)
    if isinstance(signed, Response):
        return signed
    runtime = runtime_of(request)
    now = runtime.clock.now()
    try:
        span = range_of(now, days, start, end)
    except InvalidInput as failure:
        return page(request, "analytics.html", signed, status=failure.status, error=failure.detail,
                    ranges=RANGES, days=days, start=start, end=end, shown=None)  # fmt: skip
    async with runtime.db.transaction() as session:
        shown = await figures(session, span, catalog=runtime.catalog, now=now)
    return page(
        request, "analytics.html", signed, error="", ranges=RANGES, days=days, start=start,
        end=end, shown=shown, span=span, last_day=span.end - timedelta(days=1),
        key_use_days=KEY_USE_DAYS,
    )  # fmt: skip
