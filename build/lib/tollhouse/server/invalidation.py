"""Cache invalidation across processes: a database log every process polls, and Redis pub/sub.

Each process caches keys (30 s), quota views (10 s) and flat-session views (5 s). A revoked
key, a changed plan or a started or ended session is dropped at once in the process that made
the change (`Runtime.invalidate_key`, `Runtime.invalidate_customer`,
`Runtime.invalidate_sessions`); every other process drops its own copy within 2 s, with or
without Redis:

- the log (always): right after the change commits, the changing process (a server, or the
  CLI through `announce`) writes a `cache_invalidations` row; every serving process reads the
  rows after the last one it saw once a second and applies them
  (`server.invalidation_log`). Bound: the row's insert (milliseconds after the commit, before
  the answer) + one poll interval (1 s) + the poll's query.
- Redis (when `TOLLHOUSE_REDIS_URL` is set), the fast path: the changing process also
  publishes `key:<id>`, `customer:<id>` or `sessions:<id>` on `th:invalidate`, and every subscribed process
  applies it within milliseconds. The subscriber starts whether Redis answers or not and
  subscribes again every second until it does; the log covers what it missed meanwhile.

A process that dies between the change's commit and the row's insert (or a database that
refuses the insert, which is logged) leaves the other processes on their cache TTLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from tollhouse.clock import Clock
from tollhouse.server.invalidation_log import InvalidationLog, record
from tollhouse.storage import Database

log = logging.getLogger(__name__)

CHANNEL = "th:invalidate"
KINDS = ("key", "customer", "sessions")
RETRY_SECONDS = 1.0
"""How often an unreachable Redis is tried again by the subscriber."""
TIMEOUT_SECONDS = 1.0
"""Connect and command timeout of the Redis client (publish, ping)."""


def key_message(key_id: str) -> str:
    return f"key:{key_id}"


def customer_message(customer_id: str) -> str:
    return f"customer:{customer_id}"


def sessions_message(customer_id: str) -> str:
    return f"sessions:{customer_id}"


def parse_message(message: str) -> tuple[str, str] | None:
    """`(kind, id)` of `key:<id>`, `customer:<id>` or `sessions:<id>`; None for anything
    else."""
    kind, _, ident = message.partition(":")
    return (kind, ident) if kind in KINDS and ident else None


def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS
    )


async def announce(db: Database, message: str, *, redis_url: str | None, clock: Clock) -> None:
    """Tell the running servers from a process that serves nothing (the CLI): the log row,
    then (with Redis) one publish. A failure of either is logged, not raised: the change
    itself is committed already.

    Raises:
        ValueError: `message` is not a `key_message` or `customer_message`.
    """
    await _record(db, message, clock)
    if redis_url:
        client = _client(redis_url)
        try:
            await _publish(client, message)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()


async def _record(db: Database, message: str, clock: Clock) -> None:
    parsed = parse_message(message)
    if parsed is None:
        raise ValueError(f"not an invalidation message: {message!r}")
    try:
        await record(db, *parsed, clock=clock)
    except (SQLAlchemyError, OSError):
        log.exception("could not log %s: other processes see it within their cache TTL", message)


async def _publish(client: redis.Redis, message: str) -> None:
    try:
        await client.publish(CHANNEL, message)
    except (RedisError, OSError) as exc:
        log.warning("could not publish %s (%s): other processes read it from the log", message, exc)


class Invalidations:
    """A serving process's side: the log poller, and the Redis channel when `redis_url` is set.

    `on_message(kind, id)` is called with `("key", key_id)`, `("customer", customer_id)` or
    `("sessions", customer_id)`, for changes of this process too (applying one twice is harmless).
    """

    def __init__(
        self,
        db: Database,
        redis_url: str | None,
        on_message: Callable[[str, str], None],
        *,
        clock: Clock,
    ) -> None:
        self.db = db
        self.clock = clock
        self.on_message = on_message
        self.log = InvalidationLog(db, on_message, clock=clock)
        self.client = _client(redis_url) if redis_url else None
        """The Redis client (None without Redis): publishes, and answers `ping`."""
        self._listener: asyncio.Task[None] | None = None
        self._tried = asyncio.Event()
        """Set once the first subscription attempt has ended, whether it worked or not."""
        self.subscribed = asyncio.Event()
        """Set while the Redis subscription is in place."""

    async def start(self) -> None:
        """Start polling the log; subscribe to Redis, waiting for the first attempt (at most
        the connect timeout) whether or not it succeeds.

        Raises:
            SQLAlchemyError: the database does not answer.
        """
        await self.log.start()
        if self.client is not None:
            self._listener = asyncio.create_task(self._listen(self.client), name="invalidations")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tried.wait(), 5 * TIMEOUT_SECONDS)

    async def announce(self, message: str) -> None:
        """Tell every process (this one included) to drop what `message` names: the log row,
        then the Redis message. Failures are logged, not raised (see the module docstring).

        Raises:
            ValueError: `message` is not a `key_message`, `customer_message` or
                `sessions_message`.
        """
        await _record(self.db, message, self.clock)
        if self.client is not None:
            await _publish(self.client, message)

    async def ping(self) -> None:
        """Check that Redis answers (for `/ready`).

        Raises:
            RedisError, OSError: it does not (within the client's timeouts).
            RuntimeError: no Redis is configured.
        """
        if self.client is None:
            raise RuntimeError("no Redis configured")
        await self.client.ping()

    async def stop(self) -> None:
        await self.log.stop()
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listener
            self._listener = None
        if self.client is not None:
            with contextlib.suppress(RedisError, OSError):
                await self.client.aclose()

    async def _listen(self, client: redis.Redis) -> None:
        """Subscribe and apply messages; on any Redis failure, subscribe again a second later."""
        failing = False
        while True:
            pubsub = client.pubsub()
            try:
                await pubsub.subscribe(CHANNEL)
                self.subscribed.set()
                self._tried.set()
                if failing:
                    log.warning("invalidation channel (Redis) subscribed again")
                    failing = False
                while True:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        parsed = parse_message(bytes(message["data"]).decode())
                        if parsed is not None:
                            self.on_message(*parsed)
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                self._tried.set()
                if not failing:
                    log.warning(
                        "invalidation channel (Redis) unreachable (%s): subscribing again every "
                        "%g s; the database log still applies changes",
                        exc,
                        RETRY_SECONDS,
                    )
                    failing = True
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()
            await asyncio.sleep(RETRY_SECONDS)
