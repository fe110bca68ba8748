"""API keys: issue and rotate (secret shown once), list, read, revoke, per-key usage.

A key mints only what it has: what the calling key issues or rotates is bounded by it
(`keys/bounds.py`), refused with 403 `key-exceeds-issuer` otherwise.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, status
from pydantic import Field

from tollhouse.api import problems
from tollhouse.api.deps import Admin, Reader, RuntimeDep, SessionDep, customer_of
from tollhouse.api.schemas import RequestBody, ResponseBody, Timestamp
from tollhouse.catalog import service as catalogs
from tollhouse.errors import InvalidInput
from tollhouse.keys import ApiKey, KeyNotFound, Principal
from tollhouse.keys import service as keys
from tollhouse.metering import service as metering

router = APIRouter(tags=["keys"], responses=problems.responses(401, 403))

Scope = Literal["read", "write", "admin"]


class KeyCreate(RequestBody):
    """A new key. Omitted (or null) bounded fields inherit the calling key's bound."""

    name: str = Field(default="default", min_length=1, max_length=100)
    scopes: list[Scope] = Field(default=["read", "write"], min_length=1)
    expires_at: Timestamp | None = None
    """Expiry; the key stops working at this instant. Null: the calling key's."""
    allowed_models: list[str] | None = None
    """Model ids this key may call; null = the calling key's (every model the plan allows
    for an unrestricted calling key)."""
    rate_limit_rpm: int | None = Field(default=None, ge=1, le=10_000_000)
    """This key's own requests-per-minute cap, on top of the plan's limits; null = the
    calling key's."""
    max_in_flight: int | None = Field(default=None, ge=1, le=1_000_000)
    """This key's own cap on gateway requests under way at once, beside its plan's
    `max_in_flight`; null = the calling key's."""


class KeyRotate(RequestBody):
    """A rotation: how long the old key keeps working. The body may be left out."""

    grace_seconds: int = Field(default=keys.DEFAULT_GRACE_SECONDS, ge=0, le=keys.MAX_GRACE_SECONDS)
    """Seconds the old key keeps working (never beyond its own expiry); 0 = it stops now."""


class KeyOut(ResponseBody):
    id: str
    customer_id: str | None
    name: str
    prefix: str
    """The visible start of the key, to recognise it in lists."""
    scopes: list[str]
    allowed_models: list[str] | None
    rate_limit_rpm: int | None
    max_in_flight: int | None
    """Gateway requests this key may have under way at once; null = only its plan's cap."""
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    created_at: datetime
    successor_id: str | None
    """The key that replaced this one by rotation; null = never rotated."""

    @classmethod
    def of(cls, key: ApiKey) -> KeyOut:
        return cls(
            id=key.id,
            customer_id=key.customer_id,
            name=key.name,
            prefix=key.prefix,
            scopes=list(key.scopes),
            allowed_models=list(key.allowed_models) if key.allowed_models is not None else None,
            rate_limit_rpm=key.rate_limit_rpm,
            max_in_flight=key.max_in_flight,
            expires_at=key.expires_at,
            revoked_at=key.revoked_at,
            last_used_at=key.last_used_at,
            created_at=key.created_at,
            successor_id=key.successor_id,
        )


class IssuedKeyOut(KeyOut):
    key: str
    """The secret key. Shown only in this response: store it now."""


class RotatedKeyOut(IssuedKeyOut):
    previous_key_id: str
    """The rotated key."""
    previous_key_expires_at: datetime
    """When the rotated key stops working: the end of the grace period, or its own expiry
    if that comes first."""


class KeyUsageOut(ResponseBody):
    key_id: str
    start: datetime
    end: datetime
    usage: dict[str, int]


async def _visible_key(session: Any, principal: Principal, key_id: str) -> ApiKey:
    """The key, if the caller may see it.

    Raises:
        KeyNotFound: no such key, or another customer's: the same answer (type, detail and
            fields) as for an id that exists nowhere, so ids cannot be probed.
    """
    key = await keys.get_key(session, key_id)
    if not principal.is_operator and key.customer_id != principal.customer_id:
        raise KeyNotFound(f"no API key {key_id!r}", key_id=key_id)
    return key


@router.post(
    "/v1/customers/{customer_id}/keys",
    status_code=status.HTTP_201_CREATED,
    responses=problems.responses(400, 404, 413, 422),
)
async def create_key(
    customer_id: str, body: KeyCreate, principal: Admin, runtime: RuntimeDep
) -> IssuedKeyOut:
    """Issue a key for a customer (operator, or the customer's own `admin` key), within the
    calling key's scopes, allowed models, per-key rpm and expiry."""
    owner = customer_of(principal, customer_id)
    if body.allowed_models is not None:
        unknown = [m for m in body.allowed_models if m not in runtime.catalog.models]
        if unknown:
            raise InvalidInput(
                f"unknown models: {', '.join(unknown)}",
                errors=[{"loc": "allowed_models", "msg": f"unknown model '{m}'"} for m in unknown],
            )
    async with runtime.db.transaction() as session:
        await catalogs.require_in_force(session, runtime.catalog, models=body.allowed_models or ())
        issued = await keys.create_key(
            session,
            customer_id=owner,
            name=body.name,
            issuer=principal,
            scopes=body.scopes,
            expires_at=body.expires_at,
            allowed_models=body.allowed_models,
            rate_limit_rpm=body.rate_limit_rpm,
            max_in_flight=body.max_in_flight,
            env=runtime.settings.key_env,
            secret=runtime.key_secret,
            clock=runtime.clock,
        )
    return IssuedKeyOut(**KeyOut.of(issued.key).model_dump(), key=issued.secret)


@router.get("/v1/customers/{customer_id}/keys", responses=problems.responses(404, 422))
async def list_keys(customer_id: str, principal: Reader, session: SessionDep) -> list[KeyOut]:
    """The customer's keys, revoked ones included (secrets are never shown again)."""
    owner = customer_of(principal, customer_id)
    return [KeyOut.of(k) for k in await keys.list_keys(session, customer_id=owner)]


@router.get("/v1/keys/{key_id}", responses=problems.responses(404, 422))
async def get_key(key_id: str, principal: Reader, session: SessionDep) -> KeyOut:
    return KeyOut.of(await _visible_key(session, principal, key_id))


@router.delete("/v1/keys/{key_id}", responses=problems.responses(404, 422))
async def revoke_key(key_id: str, principal: Admin, runtime: RuntimeDep) -> KeyOut:
    """Revoke a key: refused at once here, and in every other process within 2 s (through
    Redis at once when it is configured). Caches are dropped after the commit, so no process
    can reload the key as it was."""
    async with runtime.db.transaction() as session:
        key = await _visible_key(session, principal, key_id)
        revoked = await keys.revoke_key(session, key.id, clock=runtime.clock)
    await runtime.invalidate_key(key.id)
    return KeyOut.of(revoked)


@router.post(
    "/v1/keys/{key_id}/rotate",
    status_code=status.HTTP_201_CREATED,
    responses=problems.responses(400, 404, 409, 413, 422),
)
async def rotate_key(
    key_id: str, principal: Admin, runtime: RuntimeDep, body: KeyRotate | None = None
) -> RotatedKeyOut:
    """Issue a successor with the key's settings (secret shown once) and keep the old key
    working for `grace_seconds` (default 24 h). A customer's key rotates only its own
    customer's keys. Caches drop the old key after the commit, so every process sees its
    new expiry."""
    grace_seconds = (body or KeyRotate()).grace_seconds
    async with runtime.db.transaction() as session:
        rotation = await keys.rotate_key(
            session,
            key_id,
            issuer=principal,
            grace_seconds=grace_seconds,
            secret=runtime.key_secret,
            clock=runtime.clock,
        )
    await runtime.invalidate_key(rotation.previous.id)
    return RotatedKeyOut(
        **KeyOut.of(rotation.successor.key).model_dump(),
        key=rotation.successor.secret,
        previous_key_id=rotation.previous.id,
        previous_key_expires_at=rotation.previous_expires_at,
    )


@router.get("/v1/keys/{key_id}/usage", responses=problems.responses(404, 422))
async def key_usage(
    key_id: str,
    principal: Reader,
    runtime: RuntimeDep,
    session: SessionDep,
    start: Timestamp | None = Query(default=None, description="default: 30 days ago"),
    end: Timestamp | None = Query(default=None, description="default: now"),
) -> KeyUsageOut:
    """Totals per meter of the calls made with this key in `[start, end)`."""
    key = await _visible_key(session, principal, key_id)
    end = end or runtime.clock.now()
    start = start or end - timedelta(days=30)
    usage = await metering.usage_by_key(
        session, key_id=key.id, meters=runtime.catalog.aggregations(), start=start, end=end
    )
    return KeyUsageOut(key_id=key.id, start=start, end=end, usage=usage)
