"""The customer portal: the overview (balance, plan, quotas, usage per day and model) and
the API keys (create with the secret shown once, revoke). Members and admins see their own
customer only; operators use the console."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.alerts import service as alerts
from tollhouse.catalog import Catalog
from tollhouse.clock import Clock
from tollhouse.customers import service as customers
from tollhouse.dashboard.web import forbidden, form_of, page, router, runtime_of, to_login, viewer
from tollhouse.errors import TollhouseError
from tollhouse.keys import service as keys
from tollhouse.ledger import service as ledger
from tollhouse.metering import service as metering
from tollhouse.subscriptions import SubscriptionNotFound
from tollhouse.subscriptions import service as subscriptions
from tollhouse.users import SignedIn

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
    customer, its wallet, alert, subscription, quotas and usage over the last `days`."""
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


async def _member(request: Request) -> tuple[SignedIn, str] | Response:
    """The signed-in customer user and its customer, or where to send anyone else (the
    login page; an operator to the console)."""
    signed = await viewer(request)
    if signed is None:
        return to_login()
    if signed.user.is_operator or signed.user.customer_id is None:
        return RedirectResponse("/dashboard/console", status_code=303)
    return signed, signed.user.customer_id


@router.get("/portal")
async def overview(request: Request, days: int = 30) -> Response:
    member = await _member(request)
    if isinstance(member, Response):
        return member
    signed, customer_id = member
    runtime = runtime_of(request)
    async with runtime.db.transaction() as session:
        shown = await overview_of(
            session, customer_id, catalog=runtime.catalog, clock=runtime.clock,
            days=days if days in RANGES else 30,
        )  # fmt: skip
    return page(request, "portal.html", signed, **shown)


async def _keys_page(request: Request, signed: SignedIn, customer_id: str, **more: Any) -> Response:
    runtime = runtime_of(request)
    async with runtime.db.transaction() as session:
        listed = await keys.list_keys(session, customer_id=customer_id)
    return page(request, "keys.html", signed, keys=listed, now=runtime.clock.now(),
                secret=more.pop("secret", None), error=more.pop("error", ""), **more)  # fmt: skip


@router.get("/portal/keys")
async def keys_list(request: Request) -> Response:
    member = await _member(request)
    if isinstance(member, Response):
        return member
    return await _keys_page(request, *member)


@router.post("/portal/keys")
async def keys_create(request: Request) -> Response:
    """Issue a key: its secret is on this answer only."""
    member = await _member(request)
    if isinstance(member, Response):
        return member
    signed, customer_id = member
    form = await form_of(request, signed)
    if form is None:
        return forbidden(request, signed)
    runtime = runtime_of(request)
    scopes = [s for s in ("read", "write", "admin") if form.get(f"scope_{s}")]
    if "admin" in scopes and signed.user.role != "admin":
        return forbidden(request, signed)
    try:
        async with runtime.db.transaction() as session:
            issued = await keys.create_key(
                session, customer_id=customer_id, name=form.get("name", "").strip() or "key",
                issuer=None, scopes=scopes or None, secret=runtime.key_secret,
                env=runtime.settings.key_env, clock=runtime.clock,
            )  # fmt: skip
    except TollhouseError as error:
        return await _keys_page(request, signed, customer_id, error=error.detail)
    return await _keys_page(request, signed, customer_id, secret=issued.secret)


@router.post("/portal/keys/{key_id}/revoke")
async def keys_revoke(request: Request, key_id: str) -> Response:
    member = await _member(request)
    if isinstance(member, Response):
        return member
    signed, customer_id = member
    if await form_of(request, signed) is None:
        return forbidden(request, signed)
    runtime = runtime_of(request)
    try:
        async with runtime.db.transaction() as session:
            await keys.revoke_key(session, key_id, clock=runtime.clock, customer_id=customer_id)
    except TollhouseError as error:
        return await _keys_page(request, signed, customer_id, error=error.detail)
    await runtime.invalidate_key(key_id)
    return RedirectResponse("/dashboard/portal/keys", status_code=303)
