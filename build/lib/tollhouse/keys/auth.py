"""`KeyAuthenticator`: raw key -> `Principal`, with a cache, on the hot path of every request.

Order of checks: shape and checksum (`MalformedKey`, no lookup) -> HMAC digest -> cache ->
database. The cache is keyed by digest (the raw key is never kept) and is bounded (LRU):

- positive entries hold the `Principal` and the key's `expires_at`, so a key that expires
  while cached is rejected at once; they live `cache_ttl_seconds`;
- negative entries (unknown, revoked, expired) live `negative_ttl_seconds`, so a flood of
  bad keys costs one lookup per distinct key per few seconds;
- `invalidate(key_id)` drops a key here at once (call `Runtime.invalidate_key` after
  `revoke_key` commits). Every other process drops it within 2 s of the commit, with or
  without Redis: the revoking process writes an invalidation row right after its commit, and
  every serving process reads new rows once a second; with Redis, a pub/sub message makes it
  milliseconds (`server/invalidation.py`). Only a revoking process that dies between its
  commit and that row leaves the others on `cache_ttl_seconds` (30 s). A lookup racing with
  `invalidate` is not cached.

Concurrent misses for the same key share one database query. Successful authentications
`touch` the key; `flush_last_used` writes `last_used_at` for all touched keys in one
transaction, every `flush_interval_seconds` while `start()`ed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse.clock import Clock
from tollhouse.customers.models import Customer
from tollhouse.keys.errors import InvalidKey
from tollhouse.keys.format import digest, parse_key
from tollhouse.keys.models import ApiKey
from tollhouse.keys.principal import Principal
from tollhouse.storage import Database, UTCDateTime

logger = logging.getLogger(__name__)

INVALID_KEY_DETAIL = "the API key is invalid, revoked or expired"

_api_keys = cast(Table, ApiKey.__table__)
_touch_statement = (
    update(_api_keys)
    .where(_api_keys.c.id == bindparam("b_id"))
    .where(
        or_(
            _api_keys.c.last_used_at.is_(None),
            _api_keys.c.last_used_at < bindparam("b_at", type_=UTCDateTime()),
        )
    )
    .values(last_used_at=bindparam("b_at", type_=UTCDateTime()))
)


@dataclass(frozen=True, slots=True)
class _Entry:
    principal: Principal | None
    """None = a negative entry (the key does not authenticate)."""
    expires_at: float | None
    """The key's own expiry, epoch seconds; None = never."""
    stale_at: float
    """When this cache entry must be looked up again, epoch seconds."""


class KeyAuthenticator:
    """Authenticate raw API keys against the database, through a bounded TTL cache."""

    def __init__(
        self,
        db: Database,
        *,
        secret: bytes,
        clock: Clock,
        cache_ttl_seconds: float = 30.0,
        negative_ttl_seconds: float = 5.0,
        max_entries: int = 100_000,
        flush_interval_seconds: float = 5.0,
    ) -> None:
        self._db = db
        self._secret = secret
        self._clock = clock
        self.cache_ttl_seconds = cache_ttl_seconds
        self.negative_ttl_seconds = min(negative_ttl_seconds, cache_ttl_seconds)
        self.max_entries = max_entries
        self.flush_interval_seconds = flush_interval_seconds
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._digests: dict[str, str] = {}
        """key_id -> digest of its positive cache entry."""
        self._inflight: dict[str, asyncio.Task[_Entry]] = {}
        self._epoch = 0
        """Bumped by every invalidation; a lookup that spans a bump is not cached."""
        self._touched: dict[str, datetime] = {}
        self._flusher: asyncio.Task[None] | None = None
        self.lookups = 0
        """Database lookups done so far (for metrics and tests)."""
        self.hits = 0
        """Answers served from the cache so far."""

    @property
    def cached_entries(self) -> int:
        """How many digests (positive and negative) the cache holds now."""
        return len(self._cache)

    # -- authentication ------------------------------------------------------------------

    async def authenticate(self, raw_key: str, *, session: AsyncSession | None = None) -> Principal:
        """The principal of `raw_key`.

        Pass `session` when the calling task already holds one (on SQLite a second
        connection would wait for the first); without it the lookup uses its own session.

        Raises:
            MalformedKey: wrong shape or checksum (no lookup, no cache entry).
            InvalidKey: unknown, revoked or expired (one message for all three).
        """
        parse_key(raw_key)
        key_digest = digest(raw_key, self._secret)
        entry = self._cache.get(key_digest)
        if entry is not None and entry.stale_at > self._clock.timestamp():
            self._cache.move_to_end(key_digest)
            self.hits += 1
        elif session is not None:
            entry = await self._fetch(key_digest, session)
        else:
            entry = await self._load(key_digest)
        principal = entry.principal
        if principal is None or (
            entry.expires_at is not None and entry.expires_at <= self._clock.timestamp()
        ):
            raise InvalidKey(INVALID_KEY_DETAIL)
        self.touch(principal.key_id)
        return principal

    async def _load(self, key_digest: str) -> _Entry:
        """One shared lookup per digest among concurrent callers."""
        task = self._inflight.get(key_digest)
        if task is None:
            task = asyncio.create_task(self._fetch(key_digest))
            self._inflight[key_digest] = task

            def _done(finished: asyncio.Task[_Entry]) -> None:
                if self._inflight.get(key_digest) is finished:
                    del self._inflight[key_digest]

            task.add_done_callback(_done)
        return await asyncio.shield(task)

    async def _fetch(self, key_digest: str, session: AsyncSession | None = None) -> _Entry:
        epoch = self._epoch
        self.lookups += 1
        query = (
            select(ApiKey, Customer.plan)
            .outerjoin(Customer, Customer.id == ApiKey.customer_id)
            .where(ApiKey.digest == key_digest)
        )
        if session is None:
            async with self._db.sessions() as own:
                row = (await own.execute(query)).first()
        else:
            row = (await session.execute(query)).first()
        now = self._clock.now()
        if row is None or not row[0].is_active(now):
            entry = _Entry(None, None, now.timestamp() + self.negative_ttl_seconds)
        else:
            key: ApiKey = row[0]
            principal = Principal(
                key_id=key.id,
                customer_id=key.customer_id,
                scopes=frozenset(key.scopes),
                allowed_models=(
                    None if key.allowed_models is None else frozenset(key.allowed_models)
                ),
                rate_limit_rpm=key.rate_limit_rpm,
                plan=row[1] or "",
                max_in_flight=key.max_in_flight,
            )
            expires_at = None if key.expires_at is None else key.expires_at.timestamp()
            entry = _Entry(principal, expires_at, now.timestamp() + self.cache_ttl_seconds)
        if epoch == self._epoch:
            self._store(key_digest, entry)
        return entry

    def _store(self, key_digest: str, entry: _Entry) -> None:
        self._cache[key_digest] = entry
        self._cache.move_to_end(key_digest)
        if entry.principal is not None:
            self._digests[entry.principal.key_id] = key_digest
        while len(self._cache) > self.max_entries:
            _, evicted = self._cache.popitem(last=False)
            if evicted.principal is not None:
                self._digests.pop(evicted.principal.key_id, None)

    # -- invalidation --------------------------------------------------------------------

    def invalidate(self, key_id: str) -> None:
        """Forget `key_id` in this process (after revoking or changing it)."""
        self._epoch += 1
        key_digest = self._digests.pop(key_id, None)
        if key_digest is not None:
            self._cache.pop(key_digest, None)

    def invalidate_customer(self, customer_id: str) -> None:
        """Forget every cached key of `customer_id` (after a plan change)."""
        self._epoch += 1
        for key_digest, entry in list(self._cache.items()):
            if entry.principal is not None and entry.principal.customer_id == customer_id:
                del self._cache[key_digest]
                self._digests.pop(entry.principal.key_id, None)

    def clear(self) -> None:
        """Forget everything cached (positive and negative)."""
        self._epoch += 1
        self._cache.clear()
        self._digests.clear()

    # -- last used -----------------------------------------------------------------------

    def touch(self, key_id: str) -> None:
        """Note that `key_id` was used now; written by the next `flush_last_used`."""
        now = self._clock.now()
        previous = self._touched.get(key_id)
        if previous is None or previous < now:
            self._touched[key_id] = now

    async def flush_last_used(self) -> int:
        """Write `last_used_at` of every touched key in one transaction (one statement,
        executed for many rows); returns how many keys were written. A value never moves
        `last_used_at` backwards. On failure the touches are kept for the next flush.
        """
        if not self._touched:
            return 0
        pending, self._touched = self._touched, {}
        params = [{"b_id": key_id, "b_at": pending[key_id]} for key_id in sorted(pending)]
        try:
            async with self._db.transaction() as session:
                await session.execute(_touch_statement, params)
        except BaseException:
            for key_id, used_at in pending.items():
                current = self._touched.get(key_id)
                if current is None or current < used_at:
                    self._touched[key_id] = used_at
            raise
        return len(pending)

    def start(self) -> None:
        """Start flushing `last_used_at` every `flush_interval_seconds` (idempotent)."""
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_forever(), name="keys.flush_last_used")

    async def stop(self) -> None:
        """Stop the background flush, then flush what is left."""
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush_last_used()

    async def _flush_forever(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_seconds)
            try:
                await self.flush_last_used()
            except Exception:
                logger.exception("keys.flush_last_used failed; will retry")
