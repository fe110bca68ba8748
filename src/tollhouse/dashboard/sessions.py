"""The customer portal's sessions: the customer's sessions (active first, then the recent
ended ones), a start form per flat session product of the catalog and per resource tier of
its plan, a Stop button per active session.

Starts and stops call the same services as `api/routes/sessions.py`, and tell the runtime
the same way: a flat session's start or stop is applied by the gateway's session guard at
once here and within 2 s in every other process (`Runtime.invalidate_sessions`). Each start
form carries its own idempotency key (`new_id`), so a form posted twice starts one session
and charges once. A refused start or stop (402 insufficient credit, 409 already active, 403
tier not in the plan, 404 not found...) answers the page with the error and its status.

An active metered session shows its rate and its running cost as of the page's moment
(`SessionView.cost_micros`: `sessions.billing`'s rule); the page's script reloads the list
while one runs, so the cost shown follows the clock without the page computing money.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from tollhouse.customers import service as customers
from tollhouse.dashboard.web import forbidden, form_of, member, page, router, runtime_of
from tollhouse.errors import InvalidInput, TollhouseError
from tollhouse.ids import new_id
from tollhouse.sessions import SessionKind, SessionStatus, Started
from tollhouse.sessions import service as sessions
from tollhouse.users import SignedIn

RECENT_ENDED = 20
"""Ended sessions the page lists, newest first."""
REFRESH_METERED_SECONDS = 5
"""How often the page reloads its list while a metered session runs (its running cost)."""
REFRESH_FLAT_SECONDS = 60
"""How often the page reloads its list while only flat sessions are active (time left)."""


@dataclass(frozen=True, slots=True)
class TierOffer:
    """A resource tier of the customer's plan and its rate, in micros per hour."""

    tier: str
    rate_micros_per_hour: int


def span(seconds: int | None) -> str:
    """`seconds` for people, in its two largest units, a zero second unit left out:
    `2 d 3 h`, `1 d`, `1 h 5 min`, `4 min 10 s`, `9 s`; `""` for None."""
    if seconds is None:
        return ""
    days, rest = divmod(max(0, seconds), 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    units = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    first = next((i for i, (amount, _) in enumerate(units) if amount), len(units) - 1)
    shown = [units[first]] + [u for u in units[first + 1 : first + 2] if u[0]]
    return " ".join(f"{amount} {unit}" for amount, unit in shown)


async def _sessions_page(
    request: Request, signed: SignedIn, customer_id: str, *, status: int = 200, error: str = ""
) -> Response:
    """The sessions page, with `error` above the forms."""
    runtime = runtime_of(request)
    catalog = runtime.catalog
    async with runtime.db.transaction() as session:
        active = await sessions.list_sessions(
            session, clock=runtime.clock, customer_id=customer_id,
            status=SessionStatus.ACTIVE, limit=sessions.MAX_PAGE,
        )  # fmt: skip
        ended = await sessions.list_sessions(
            session, clock=runtime.clock, customer_id=customer_id,
            status=SessionStatus.ENDED, limit=RECENT_ENDED,
        )  # fmt: skip
        prepaid = {q.product: q.sessions_left for q in await sessions.quota(
            session, customer_id, catalog=catalog)}  # fmt: skip
        plan = catalog.plan((await customers.get(session, customer_id)).plan)
    tiers = [
        TierOffer(tier, rate)
        for tier in sorted(plan.resource_tiers)
        if (rate := plan.session_rate_micros(tier)) is not None
    ]
    metered = any(s.kind == SessionKind.METERED for s in active)
    refresh = REFRESH_METERED_SECONDS if metered else REFRESH_FLAT_SECONDS if active else 0
    return page(
        request, "sessions.html", signed, status=status, error=error, active=active,
        ended=ended, products=list(catalog.session_products.values()), prepaid=prepaid,
        tiers=tiers, plan=plan.name, now=runtime.clock.now(), span=span,
        start_key=new_id("dses"), refresh_seconds=refresh,
    )  # fmt: skip


@router.get("/portal/sessions")
async def sessions_list(request: Request) -> Response:
    found = await member(request)
    if isinstance(found, Response):
        return found
    return await _sessions_page(request, *found)


async def _start(request: Request, customer_id: str, form: Mapping[str, str]) -> Started:
    """Start what the form names: `product` (flat) or `resource_tier` (metered), once per
    `idempotency_key`.

    Raises:
        InvalidInput: neither or both named.
        TollhouseError: what `sessions.start` or `sessions.start_metered` raise.
    """
    runtime = runtime_of(request)
    product, tier = form.get("product", ""), form.get("resource_tier", "")
    key = form.get("idempotency_key", "")
    if bool(product) == bool(tier):
        msg = "pick a session product or a resource tier"
        raise InvalidInput(msg, errors=[{"loc": "product", "msg": msg}])
    if tier:
        return await sessions.start_metered(
            runtime.db, runtime.ledger, catalog=runtime.catalog, clock=runtime.clock,
            customer_id=customer_id, resource_tier=tier, idempotency_key=key,
        )  # fmt: skip
    started = await sessions.start(
        runtime.db, runtime.ledger, catalog=runtime.catalog, clock=runtime.clock,
        customer_id=customer_id, product=product, idempotency_key=key,
    )  # fmt: skip
    await runtime.invalidate_sessions(customer_id)
    return started


@router.post("/portal/sessions")
async def sessions_start(request: Request) -> Response:
    """Start a session (a replay of the form's key changes nothing) and go back to the list."""
    found = await member(request)
    if isinstance(found, Response):
        return found
    signed, customer_id = found
    form = await form_of(request, signed)
    if form is None:
        return forbidden(request, signed)
    try:
        await _start(request, customer_id, form)
    except TollhouseError as error:
        return await _sessions_page(request, signed, customer_id, status=error.status,
                                    error=error.detail)  # fmt: skip
    return RedirectResponse("/dashboard/portal/sessions", status_code=303)


@router.post("/portal/sessions/{session_id}/stop")
async def sessions_stop(request: Request, session_id: str) -> Response:
    """Stop one of the customer's sessions now: a flat one's fee is not refunded, a metered
    one is billed for its run and settled (`sessions.stop`). Another customer's id is 404."""
    found = await member(request)
    if isinstance(found, Response):
        return found
    signed, customer_id = found
    if await form_of(request, signed) is None:
        return forbidden(request, signed)
    runtime = runtime_of(request)
    try:
        view = await sessions.stop(
            runtime.db, runtime.ledger, session_id, catalog=runtime.catalog,
            clock=runtime.clock, customer_id=customer_id,
        )  # fmt: skip
    except TollhouseError as error:
        return await _sessions_page(request, signed, customer_id, status=error.status,
                                    error=error.detail)  # fmt: skip
    if view.kind == SessionKind.FLAT:
        await runtime.invalidate_sessions(customer_id)
    return RedirectResponse("/dashboard/portal/sessions", status_code=303)
