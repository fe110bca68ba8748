"""Key service: issue, rotate, list, read and revoke API keys.

Functions take the caller's `AsyncSession` and never commit. `secret` is the HMAC key of the
digests (`Settings.key_secret`); the raw key leaves `create_key` and `rotate_key` once, in
`IssuedKey.secret`, and is never stored or logged.

`issuer` is the key the request came with (the API passes its `Principal`): what it mints or
rotates is bounded by what it has (`keys/bounds.py`). `issuer=None` is a trusted context with
database access (the CLI, `bootstrap`, code embedding tollhouse): not bounded.

After `revoke_key` or `rotate_key` commits, call `Runtime.invalidate_key(key_id)` for the
revoked or rotated key (the CLI: `Services.notify`): this process drops its cached copy at
once, and every other process within 2 s, with or without Redis (`server/invalidation.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import Clock
from tollhouse.customers import CustomerNotFound
from tollhouse.customers import service as customers
from tollhouse.errors import InvalidInput
from tollhouse.ids import new_id
from tollhouse.keys.bounds import default_scopes, require_within
from tollhouse.keys.errors import InvalidKey, InvalidScope, KeyExists, KeyNotFound, KeyNotRotatable
from tollhouse.keys.format import ENV_PATTERN, digest, env_of_prefix, generate_key, parse_key
from tollhouse.keys.models import ApiKey
from tollhouse.keys.principal import Principal

SCOPES = frozenset({"read", "write", "admin"})
"""Every scope a key may carry. `admin` implies `read` and `write`."""
DEFAULT_GRACE_SECONDS = 86_400
"""How long a rotated key keeps working by default: 24 h, as Stripe's default roll."""
MAX_GRACE_SECONDS = 30 * 86_400
"""The longest grace period a rotation may give the old key: 30 days."""


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key and its raw secret, which exists only here (show it once)."""

    key: ApiKey
    secret: str
    """The raw `th_<env>_...` key."""

    def __repr__(self) -> str:
        return f"IssuedKey(key={self.key!r}, secret='{self.key.prefix}...')"


@dataclass(frozen=True)
class Rotation:
    """A rotated key and its successor."""

    successor: IssuedKey
    """The new key, with the old key's settings; its secret is shown once."""
    previous: ApiKey
    """The old key, `successor_id` set."""
    previous_expires_at: datetime
    """When the old key stops working (its new `expires_at`): the end of the grace period,
    or its own expiry if that comes first."""


def _invalid(loc: str, msg: str) -> InvalidInput:
    return InvalidInput(f"{loc}: {msg}", errors=[{"loc": loc, "msg": msg}])


def normalize_scopes(scopes: Iterable[str]) -> list[str]:
    """`scopes` deduplicated and sorted.

    Raises:
        InvalidScope: empty, or a scope outside `read`, `write`, `admin`.
    """
    if isinstance(scopes, str):
        scopes = [scopes]
    result = sorted(set(scopes))
    unknown = [s for s in result if s not in SCOPES]
    if unknown or not result:
        msg = f"unknown scopes {unknown}" if unknown else "at least one scope is required"
        raise InvalidScope(
            f"{msg}; allowed: admin, read, write", errors=[{"loc": "scopes", "msg": msg}]
        )
    return result


async def _issuer_key(session: AsyncSession, issuer: Principal, now: datetime) -> ApiKey:
    """The stored key behind `issuer`, read in this transaction (its bounds as they are now).

    Raises:
        InvalidKey: revoked or expired since it authenticated.
    """
    key = await session.get(ApiKey, issuer.key_id)
    if key is None or not key.is_active(now):
        raise InvalidKey("the API key is invalid, revoked or expired")
    return key


async def create_key(
    session: AsyncSession,
    *,
    customer_id: str | None,
    name: str,
    issuer: Principal | None,
    scopes: Iterable[str] | None = None,
    expires_at: datetime | None = None,
    allowed_models: Iterable[str] | None = None,
    rate_limit_rpm: int | None = None,
    max_in_flight: int | None = None,
    env: str = "live",
    secret: bytes,
    clock: Clock,
    raw_key: str | None = None,
) -> IssuedKey:
    """Issue a key for `customer_id` (None = an operator key) and return it with its secret.

    `issuer` is the key minting it (None: a trusted context, see the module docstring); the
    new key gets at most what `issuer` has, and an omitted (None) `scopes`, `allowed_models`,
    `rate_limit_rpm`, `max_in_flight` or `expires_at` inherits the issuer's bound (`keys/bounds.py`).
    Without an issuer: `scopes` None = `read`, `write`; `allowed_models` None = every model
    the plan allows (an empty iterable = none); `rate_limit_rpm` None = only the plan's
    limits; `expires_at` None = never. `rate_limit_rpm` is >= 1 requests per minute;
    `max_in_flight` >= 1 gateway requests under way at once (None = only the plan's cap).
    `raw_key` installs a given well-formed key instead of generating one (its own `env` wins
    over `env`).

    Raises:
        CustomerNotFound: no customer `customer_id`, or another customer's (issuer a customer
            key: no existence oracle).
        KeyExceedsIssuer: 403, the key would have more than `issuer` (`fields` names what).
        InvalidKey: `issuer` was revoked or expired meanwhile.
        InvalidScope: empty or unknown scopes.
        InvalidInput: empty/oversized name, bad env, rate_limit_rpm or max_in_flight < 1,
            expires_at not
            after now.
        MalformedKey: `raw_key` is not a well-formed key.
        KeyExists: `raw_key` is already installed.
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise _invalid("name", "must be 1..200 characters")
    normalized_scopes = None if scopes is None else normalize_scopes(scopes)
    models = None if allowed_models is None else sorted(set(_models(allowed_models)))
    if rate_limit_rpm is not None and rate_limit_rpm < 1:
        raise _invalid("rate_limit_rpm", "must be at least 1")
    if max_in_flight is not None and max_in_flight < 1:
        raise _invalid("max_in_flight", "must be at least 1")
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        raise _invalid("expires_at", "must be in the future")
    if raw_key is None and not ENV_PATTERN.fullmatch(env):
        raise _invalid("env", "must be 1..12 characters of [a-z0-9]")

    bound = None if issuer is None else await _issuer_key(session, issuer, now)
    if (
        bound is not None
        and customer_id is not None
        and bound.customer_id not in (None, customer_id)
    ):
        # Another customer's id answers as an unknown one would: no existence oracle.
        raise CustomerNotFound(f"no customer {customer_id!r}", customer_id=customer_id)
    if customer_id is not None:
        await customers.get(session, customer_id)
    if normalized_scopes is None:
        normalized_scopes = default_scopes(bound)
    if bound is not None:
        if models is None and bound.allowed_models is not None:
            models = list(bound.allowed_models)
        rate_limit_rpm = rate_limit_rpm if rate_limit_rpm is not None else bound.rate_limit_rpm
        max_in_flight = max_in_flight if max_in_flight is not None else bound.max_in_flight
        expires_at = expires_at if expires_at is not None else bound.expires_at
        require_within(
            bound,
            customer_id=customer_id,
            scopes=normalized_scopes,
            allowed_models=models,
            rate_limit_rpm=rate_limit_rpm,
            expires_at=expires_at,
            max_in_flight=max_in_flight,
        )
    return await _insert(
        session,
        customer_id=customer_id,
        name=name,
        scopes=normalized_scopes,
        allowed_models=models,
        rate_limit_rpm=rate_limit_rpm,
        max_in_flight=max_in_flight,
        expires_at=expires_at,
        raw_key=raw_key if raw_key is not None else generate_key(env),
        secret=secret,
        now=now,
    )


async def _insert(
    session: AsyncSession,
    *,
    customer_id: str | None,
    name: str,
    scopes: list[str],
    allowed_models: list[str] | None,
    rate_limit_rpm: int | None,
    max_in_flight: int | None,
    expires_at: datetime | None,
    raw_key: str,
    secret: bytes,
    now: datetime,
) -> IssuedKey:
    """Store a checked key for `raw_key` (its digest and prefix, never the key).

    Raises:
        MalformedKey: `raw_key` is not a well-formed key.
        KeyExists: `raw_key` is already installed.
    """
    parsed = parse_key(raw_key)
    key_digest = digest(raw_key, secret)
    if await session.scalar(select(exists().where(ApiKey.digest == key_digest))):
        raise KeyExists("this API key is already installed")
    key = ApiKey(
        id=new_id("key"),
        customer_id=customer_id,
        name=name,
        prefix=parsed.prefix,
        digest=key_digest,
        scopes=scopes,
        allowed_models=allowed_models,
        rate_limit_rpm=rate_limit_rpm,
        max_in_flight=max_in_flight,
        expires_at=expires_at,
        created_at=now,
    )
    session.add(key)
    await session.flush()
    return IssuedKey(key=key, secret=raw_key)


def _rotation_state(key: ApiKey, now: datetime) -> str | None:
    """Why `key` cannot be rotated (`rotated`, `revoked`, `expired`), or None if it can."""
    if key.successor_id is not None:
        return "rotated"
    if key.revoked_at is not None:
        return "revoked"
    return None if key.is_active(now) else "expired"


def _not_rotatable(key: ApiKey, state: str) -> KeyNotRotatable:
    return KeyNotRotatable(
        f"API key {key.id!r} is {state}: only an active key never rotated can be rotated",
        key_id=key.id,
        state=state,
    )


async def rotate_key(
    session: AsyncSession,
    key_id: str,
    *,
    issuer: Principal | None,
    grace_seconds: int = DEFAULT_GRACE_SECONDS,
    secret: bytes,
    clock: Clock,
) -> Rotation:
    """Issue a successor of `key_id` with its settings (customer, name, scopes, allowed
    models, per-key rpm, expiry, env) and let the old key work `grace_seconds` more.

    The old key's `expires_at` becomes the earlier of its own and now + `grace_seconds`
    (0 = it stops now) and its `successor_id` names the new key; a key is rotated once. As
    Stripe's and Unkey's key rolling. `issuer` (None: trusted) must own the key if it is a
    customer key, and the successor must be within its bounds (`keys/bounds.py`); the
    settings are copied as they are, never narrowed.

    Raises:
        KeyNotFound: no such key, or another customer's (issuer a customer key).
        KeyNotRotatable: 409, the key was already rotated (also by a concurrent call), or is
            revoked or expired; `state` says which.
        KeyExceedsIssuer: 403, the successor would have more than `issuer`.
        InvalidKey: `issuer` was revoked or expired meanwhile.
        InvalidInput: `grace_seconds` outside 0..`MAX_GRACE_SECONDS`.
    """
    if not 0 <= grace_seconds <= MAX_GRACE_SECONDS:
        raise _invalid("grace_seconds", f"must be 0..{MAX_GRACE_SECONDS} seconds")
    now = clock.now()
    owner = None if issuer is None else issuer.customer_id
    old = await get_key(session, key_id, customer_id=owner)
    state = _rotation_state(old, now)
    if state is not None:
        raise _not_rotatable(old, state)
    if issuer is not None:
        require_within(
            await _issuer_key(session, issuer, now),
            customer_id=old.customer_id,
            scopes=old.scopes,
            allowed_models=old.allowed_models,
            rate_limit_rpm=old.rate_limit_rpm,
            expires_at=old.expires_at,
            max_in_flight=old.max_in_flight,
        )
    successor = await _insert(
        session,
        customer_id=old.customer_id,
        name=old.name,
        scopes=list(old.scopes),
        allowed_models=None if old.allowed_models is None else list(old.allowed_models),
        rate_limit_rpm=old.rate_limit_rpm,
        max_in_flight=old.max_in_flight,
        expires_at=old.expires_at,
        raw_key=generate_key(env_of_prefix(old.prefix)),
        secret=secret,
        now=now,
    )
    grace_end = now + timedelta(seconds=grace_seconds)
    expires_at = grace_end if old.expires_at is None else min(old.expires_at, grace_end)
    # Compare-and-set: of two rotations racing on one key, the second finds the successor
    # the first committed and changes nothing (PostgreSQL re-checks the WHERE after the lock).
    changed = await session.scalar(
        update(ApiKey)
        .where(ApiKey.id == old.id, ApiKey.successor_id.is_(None), ApiKey.revoked_at.is_(None))
        .values(successor_id=successor.key.id, expires_at=expires_at)
        .returning(ApiKey.id)
        .execution_options(synchronize_session=False)
    )
    await session.refresh(old)
    if changed is None:
        raise _not_rotatable(old, _rotation_state(old, now) or "rotated")
    return Rotation(successor=successor, previous=old, previous_expires_at=expires_at)


def _models(allowed_models: Iterable[str]) -> list[str]:
    if isinstance(allowed_models, str):
        allowed_models = [allowed_models]
    models = list(allowed_models)
    if any(not m or len(m) > 200 for m in models):
        raise _invalid("allowed_models", "model ids must be 1..200 characters")
    return models


async def get_key(session: AsyncSession, key_id: str, *, customer_id: str | None = None) -> ApiKey:
    """The key `key_id`; with `customer_id`, only if that customer owns it.

    Raises:
        KeyNotFound: no such key (or owned by someone else).
    """
    key = await session.get(ApiKey, key_id)
    if key is None or (customer_id is not None and key.customer_id != customer_id):
        raise KeyNotFound(f"no API key {key_id!r}", key_id=key_id)
    return key


async def list_keys(
    session: AsyncSession, *, customer_id: str | None, include_revoked: bool = True
) -> list[ApiKey]:
    """Keys oldest first: those of `customer_id`, or every key (customers' and operators')
    when `customer_id` is None (the operator's view)."""
    query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
    if customer_id is not None:
        query = query.where(ApiKey.customer_id == customer_id)
    if not include_revoked:
        query = query.where(ApiKey.revoked_at.is_(None))
    return list(await session.scalars(query))


async def revoke_key(
    session: AsyncSession, key_id: str, *, clock: Clock, customer_id: str | None = None
) -> ApiKey:
    """Revoke `key_id` for good (idempotent: a second call keeps the first `revoked_at`).

    With `customer_id`, only a key that customer owns can be revoked.

    Raises:
        KeyNotFound: no such key (or owned by someone else).
    """
    key = await get_key(session, key_id, customer_id=customer_id)
    if key.revoked_at is None:
        key.revoked_at = clock.now()
        await session.flush()
    return key


async def has_operator_key(session: AsyncSession, *, clock: Clock | None = None) -> bool:
    """True when an unrevoked operator key exists (with `clock`: also unexpired)."""
    condition = ApiKey.customer_id.is_(None) & ApiKey.revoked_at.is_(None)
    if clock is not None:
        condition = condition & (ApiKey.expires_at.is_(None) | (ApiKey.expires_at > clock.now()))
    return bool(await session.scalar(select(exists().where(condition))))


@dataclass(frozen=True, slots=True)
class Adoption:
    """How customers use API keys: `customers_with_active_key` (customers owning a key
    neither revoked nor expired), `active_keys` (such keys), `keys_used` (customer keys that
    authenticated since the given moment; `last_used_at` is written in batches, so it may
    lag a few seconds)."""

    customers_with_active_key: int
    active_keys: int
    keys_used: int


async def adoption(session: AsyncSession, *, now: datetime, used_since: datetime) -> Adoption:
    """Key adoption over every customer at `now` (operator keys are not counted)."""
    active = (
        ApiKey.customer_id.is_not(None)
        & ApiKey.revoked_at.is_(None)
        & (ApiKey.expires_at.is_(None) | (ApiKey.expires_at > now))
    )
    row = (
        await session.execute(
            select(func.count(func.distinct(ApiKey.customer_id)), func.count()).where(active)
        )
    ).one()
    used = await session.scalar(
        select(func.count()).where(
            ApiKey.customer_id.is_not(None), ApiKey.last_used_at >= used_since
        )
    )
    return Adoption(int(row[0]), int(row[1]), int(used or 0))
