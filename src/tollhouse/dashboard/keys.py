"""The customer portal's API keys: create one (scopes, allowed models, expiry; the secret
shown on that answer only), revoke one, rotate one (a successor with the same settings, its
secret shown once, the old key working on for a chosen grace period).

Only a customer's `admin` user may create a key with the `admin` scope, or rotate one that
has it. Allowed models are picked from the models the customer's plan can call; none picked
means every model of the plan. Revoked and rotated keys are dropped from the caches after
the commit (`Runtime.invalidate_key`), as the API's routes do.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.catalog import Catalog
from tollhouse.catalog import service as catalogs
from tollhouse.customers import service as customers
from tollhouse.dashboard.web import forbidden, form_of, member, page, router, runtime_of
from tollhouse.errors import InvalidInput, TollhouseError
from tollhouse.keys import service as keys
from tollhouse.users import Role, SignedIn

SCOPES = ("read", "write", "admin")
"""The scope checkboxes, `scope_<name>` in the form."""
MAX_EXPIRY_DAYS = 3650
"""The furthest expiry the form takes: ten years."""
GRACES = ((0, "stops now"), (3600, "works 1 more hour"), (keys.DEFAULT_GRACE_SECONDS,
          "works 24 more hours"), (7 * 86_400, "works 7 more days"))  # fmt: skip
"""What rotating offers for the old key: (grace_seconds, label)."""


def _invalid(loc: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{loc}: {msg}", errors=[{"loc": loc, "msg": msg}])


def expiry_of(form: Mapping[str, str], *, now: datetime, time_zone: str) -> datetime | None:
    """The key's expiry from the form: `expires_in_days` (1..3650 days from now) or
    `expires_on` (an ISO date, the last day the key works in `time_zone`: it stops at the
    next midnight there); neither = never.

    Raises:
        InvalidInput: both given, not a whole number of days in range, not a date, or a
            date before today.
    """
    days, on = form.get("expires_in_days", "").strip(), form.get("expires_on", "").strip()
    if days and on:
        raise _invalid("expires_in_days", "give a number of days or a date, not both")
    if days:
        if not days.isdigit() or not 1 <= int(days) <= MAX_EXPIRY_DAYS:
            raise _invalid("expires_in_days", f"must be a whole number 1..{MAX_EXPIRY_DAYS}")
        return now + timedelta(days=int(days))
    if on:
        try:
            last_day = date.fromisoformat(on)
        except ValueError:
            raise _invalid("expires_on", "must be a date as YYYY-MM-DD") from None
        ends_at = datetime.combine(last_day + timedelta(days=1), time(), ZoneInfo(time_zone))
        if ends_at <= now or ends_at - now > timedelta(days=MAX_EXPIRY_DAYS):
            raise _invalid("expires_on", f"must be today or later, within {MAX_EXPIRY_DAYS} days")
        return ends_at
    return None


def models_of(form: Mapping[str, str], plan_models: list[str]) -> list[str] | None:
    """The models ticked in the form (`model_<id>`), or None when none is: every model of
    the plan.

    Raises:
        InvalidInput: a ticked model the plan cannot call.
    """
    ticked = [name.removeprefix("model_") for name in form if name.startswith("model_")]
    outside = [m for m in ticked if m not in plan_models]
    if outside:
        raise _invalid("allowed_models", f"not models of your plan: {', '.join(outside)}")
    return ticked or None


async def _plan_models(session: AsyncSession, catalog: Catalog, customer_id: str) -> list[str]:
    """Ids of the models the customer's plan can call, in catalog order."""
    customer = await customers.get(session, customer_id)
    return [m.id for m in catalog.models_for_plan(customer.plan)]


async def _keys_page(
    request: Request,
    signed: SignedIn,
    customer_id: str,
    *,
    status: int = 200,
    error: str = "",
    secret: str | None = None,
    rotated_until: datetime | None = None,
) -> Response:
    """The keys page; `secret` is a new key's, shown once (`rotated_until`: when the key it
    replaced stops working)."""
    runtime = runtime_of(request)
    async with runtime.db.transaction() as session:
        listed = await keys.list_keys(session, customer_id=customer_id)
        plan_models = await _plan_models(session, runtime.catalog, customer_id)
    return page(
        request, "keys.html", signed, status=status, keys=listed, now=runtime.clock.now(),
        plan_models=plan_models, graces=GRACES,
        error=error, secret=secret, rotated_until=rotated_until,
    )  # fmt: skip


@router.get("/portal/keys")
async def keys_list(request: Request) -> Response:
    found = await member(request)
    if isinstance(found, Response):
        return found
    return await _keys_page(request, *found)


@router.post("/portal/keys")
async def keys_create(request: Request) -> Response:
    """Issue a key: its secret is on this answer only. A form error answers the page with
    its message (422, 404...)."""
    found = await member(request)
    if isinstance(found, Response):
        return found
    signed, customer_id = found
    form = await form_of(request, signed)
    if form is None:
        return forbidden(request, signed)
    scopes = [s for s in SCOPES if form.get(f"scope_{s}")]
    if "admin" in scopes and signed.user.role != Role.ADMIN:
        return forbidden(request, signed)
    runtime = runtime_of(request)
    try:
        expires_at = expiry_of(form, now=runtime.clock.now(), time_zone=signed.user.time_zone)
        async with runtime.db.transaction() as session:
            plan_models = await _plan_models(session, runtime.catalog, customer_id)
            allowed_models = models_of(form, plan_models)
            await catalogs.require_in_force(session, runtime.catalog, models=allowed_models or ())
            issued = await keys.create_key(
                session, customer_id=customer_id, name=form.get("name", "").strip() or "key",
                issuer=None, scopes=scopes or None, expires_at=expires_at,
                allowed_models=allowed_models, secret=runtime.key_secret,
                env=runtime.settings.key_env, clock=runtime.clock,
            )  # fmt: skip
    except TollhouseError as error:
        return await _keys_page(request, signed, customer_id, status=error.status,
                                error=error.detail)  # fmt: skip
    return await _keys_page(request, signed, customer_id, secret=issued.secret)


@router.post("/portal/keys/{key_id}/revoke")
async def keys_revoke(request: Request, key_id: str) -> Response:
    found = await member(request)
    if isinstance(found, Response):
        return found
    signed, customer_id = found
    if await form_of(request, signed) is None:
        return forbidden(request, signed)
    runtime = runtime_of(request)
    try:
        async with runtime.db.transaction() as session:
            await keys.revoke_key(session, key_id, clock=runtime.clock, customer_id=customer_id)
    except TollhouseError as error:
        return await _keys_page(request, signed, customer_id, status=error.status,
                                error=error.detail)  # fmt: skip
    await runtime.invalidate_key(key_id)
    return RedirectResponse("/dashboard/portal/keys", status_code=303)


@router.post("/portal/keys/{key_id}/rotate")
async def keys_rotate(request: Request, key_id: str) -> Response:
    """Rotate a key (`keys.service.rotate_key`): the successor's secret is on this answer
    only; the old key works on for the form's `grace_seconds` (one of `GRACES`)."""
    found = await member(request)
    if isinstance(found, Response):
        return found
    signed, customer_id = found
    form = await form_of(request, signed)
    if form is None:
        return forbidden(request, signed)
    runtime = runtime_of(request)
    try:
        grace = form.get("grace_seconds", "")
        if grace not in {str(seconds) for seconds, _ in GRACES}:
            raise _invalid("grace_seconds", "pick how long the old key keeps working")
        async with runtime.db.transaction() as session:
            old = await keys.get_key(session, key_id, customer_id=customer_id)
            if "admin" in old.scopes and signed.user.role != Role.ADMIN:
                return forbidden(request, signed)
            rotation = await keys.rotate_key(
                session, old.id, issuer=None, grace_seconds=int(grace),
                secret=runtime.key_secret, clock=runtime.clock,
            )  # fmt: skip
    except TollhouseError as error:
        return await _keys_page(request, signed, customer_id, status=error.status,
                                error=error.detail)  # fmt: skip
    await runtime.invalidate_key(rotation.previous.id)
    return await _keys_page(request, signed, customer_id, secret=rotation.successor.secret,
                            rotated_until=rotation.previous_expires_at)  # fmt: skip
