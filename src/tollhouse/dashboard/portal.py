"""The customer portal's overview: balance, plan, quotas, usage per day and model. Members
and admins see their own customer only; operators use the console. Its keys are in
`dashboard.keys`, its sessions in `dashboard.sessions`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.alerts import service as alerts
from tollhouse.catalog import Catalog
from tollhouse.clock import Clock
from tollhouse.customers import service as customers
from tollhouse.dashboard.web import member, page, router, runtime_of
from tollhouse.ledger import service as ledger
from tollhouse.metering import denials
from tollhouse.metering import service as metering
from tollhouse.subscriptions import SubscriptionNotFound
from tollhouse.subscriptions import service as subscriptions

DENIALS_SHOWN = 10
"""The latest refused calls the overview lists."""
RANGES = (7, 30, 90)
"""Days the usage table can cover."""


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One day's use of one model: requests and tokens."""

    day: str
    model: str
    requests: int
    input_tokens: int
    output_tokens: int


async def overview_of(
    session: AsyncSession, customer_id: str, *, catalog: Catalog, clock: Clock, days: int
) -> dict[str, Any]:
    """What the overview shows of a customer (also the console's customer page): the
    customer, its wallet, alert, subscription, quotas, usage over the last `days`, and its
    latest refused calls (rate limits, quotas, credits: `metering.denials`)."""
    now = clock.now()
    customer = await customers.get(session, customer_id)
    wallet = await ledger.balance(session, customer_id, catalog.currency, now=now)
    alert = await alerts.get(session, customer_id)
    try:
        subscription: Any = await subscriptions.get_subscription(session, customer_id)
        quotas = [
            q
            for q in await subscriptions.quota_usage(
                session, customer_id, catalog=catalog, clock=clock
            )
            if q.limit is not None
        ]
    except SubscriptionNotFound:
        subscription, quotas = None, []
    meters = {m: catalog.meters[m].aggregation for m in ("api_calls", "input_tokens",
              "output_tokens") if m in catalog.meters}  # fmt: skip
    buckets = await metering.query_usage(
        session, customer_id=customer_id, meters=meters, start=now - timedelta(days=days),
        end=now + timedelta(seconds=1), window="day", group_by="model",
    )  # fmt: skip
    rows: dict[tuple[str, str], dict[str, int]] = {}
    for b in buckets:
        day = b.window_start.date().isoformat() if b.window_start else ""
        rows.setdefault((day, b.group or "-"), {})[b.meter] = b.value
    usage = [
        UsageRow(day, model, v.get("api_calls", 0), v.get("input_tokens", 0),
                 v.get("output_tokens", 0))
        for (day, model), v in sorted(rows.items(), reverse=True)
    ]  # fmt: skip
    return {
        "customer": customer,
        "denials": await denials.recent(session, customer_id, limit=DENIALS_SHOWN),
        "wallet": wallet,
        "low": alert is not None and alert.state != "armed",
        "subscription": subscription,
        "quotas": quotas,
        "usage": usage,
        "chart": chart(usage),
        "days": days,
        "ranges": RANGES,
    }


def chart(usage: list[UsageRow]) -> dict[str, list[int]]:
    """The usage chart's series, one point per day with usage, oldest first: `days` (Unix
    seconds of each UTC day), `requests` and `tokens` (input + output) over every model."""
    per_day: dict[str, tuple[int, int]] = {}
    for row in usage:
        requests, tokens = per_day.get(row.day, (0, 0))
        per_day[row.day] = (requests + row.requests, tokens + row.input_tokens + row.output_tokens)
    days = sorted(per_day)
    return {
        "days": [int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp()) for day in days],
        "requests": [per_day[day][0] for day in days],
        "tokens": [per_day[day][1] for day in days],
    }


@router.get("/portal")
async def overview(request: Request, days: int = 30) -> Response:
    found = await member(request)
    if isinstance(found, Response):
        return found
    signed, customer_id = found
    runtime = runtime_of(request)
    async with runtime.db.transaction() as session:
        shown = await overview_of(
            session, customer_id, catalog=runtime.catalog, clock=runtime.clock,
            days=days if days in RANGES else 30,
        )  # fmt: skip
    return page(request, "portal.html", signed, **shown)
