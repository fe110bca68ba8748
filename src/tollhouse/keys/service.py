"""Key service: issue, list, read and revoke API keys.

Functions take the caller's `AsyncSession` and never commit. `secret` is the HMAC key of the
digests (`Settings.key_secret`); the raw key leaves `create_key` once, in `IssuedKey.secret`,
and is never stored or logged.

After `revoke_key` commits, call `Runtime.invalidate_key(key_id)` (the CLI: `Services.notify`):
this process stops accepting the key at once, and every other process within 2 s, with or
without Redis (`server/invalidation.py`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import Clock
from tollhouse.customers import service as customers
from tollhouse.errors import InvalidInput
from tollhouse.ids import new_id
from tollhouse.keys.errors import InvalidScope, KeyExists, KeyNotFound
from tollhouse.keys.format import ENV_PATTERN, digest, generate_key, parse_key
from tollhouse.keys.models import ApiKey

SCOPES = frozenset({"read", "write", "admin"})
"""Every scope a key may carry. `admin` implies `read` and `write`."""
DEFAULT_SCOPES = ("read", "write")


@dataclass(frozen=True)
class IssuedKey:
    """A freshly created key and its raw secret, which exists only here (show it once)."""

    key: ApiKey
    secret: str
    """The raw `th_<env>_...` key."""

    def __repr__(self) -> str:
        return f"IssuedKey(key={self.key!r}, secret='{self.key.prefix}...')"


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


async def create_key(
    session: AsyncSession,
    *,
    customer_id: str | None,
    name: str,
    scopes: Iterable[str] = DEFAULT_SCOPES,
    expires_at: datetime | None = None,
    allowed_models: Iterable[str] | None = None,
    rate_limit_rpm: int | None = None,
    env: str = "live",
    secret: bytes,
    clock: Clock,
    raw_key: str | None = None,
) -> IssuedKey:
    """Issue a key for `customer_id` (None = an operator key) and return it with its secret.

    `allowed_models` None = every model the plan allows; an empty iterable = none.
    `rate_limit_rpm` >= 1 requests per minute, or None. `raw_key` installs a given
    well-formed key instead of generating one (its own `env` wins over `env`).

    Raises:
        CustomerNotFound: no customer `customer_id`.
        InvalidScope: empty or unknown scopes.
        InvalidInput: empty/oversized name, bad env, rate_limit_rpm < 1, expires_at not
            after now.
        MalformedKey: `raw_key` is not a well-formed key.
        KeyExists: `raw_key` is already installed.
    """
    name = name.strip()
    if not name or len(name) > 200:
        raise _invalid("name", "must be 1..200 characters")
    normalized_scopes = normalize_scopes(scopes)
    models = None if allowed_models is None else sorted(set(_models(allowed_models)))
    if rate_limit_rpm is not None and rate_limit_rpm < 1:
        raise _invalid("rate_limit_rpm", "must be at least 1")
    now = clock.now()
    if expires_at is not None and expires_at <= now:
        raise _invalid("expires_at", "must be in the future")
    if customer_id is not None:
        await customers.get(session, customer_id)

    if raw_key is None:
        if not ENV_PATTERN.fullmatch(env):
            raise _invalid("env", "must be 1..12 characters of [a-z0-9]")
        raw_key = generate_key(env)
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
        scopes=normalized_scopes,
        allowed_models=models,
        rate_limit_rpm=rate_limit_rpm,
        expires_at=expires_at,
        created_at=now,
    )
    session.add(key)
    await session.flush()
    return IssuedKey(key=key, secret=raw_key)


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
