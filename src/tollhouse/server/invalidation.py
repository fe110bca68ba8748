"""Cache invalidation across processes: Redis pub/sub, when `TOLLHOUSE_REDIS_URL` is set.

Each process caches keys (30 s) and quota views (10 s). A revoked key or a changed plan is
dropped at once in the process that made the change; with Redis, that process also publishes
`key:<id>` or `customer:<id>` on `th:invalidate`, and every subscribed process drops its own
copy when the message arrives (milliseconds), instead of when its cache entry expires. Without
Redis (one process) the local drop is all there is. A lost message (Redis briefly down) falls
back to the TTLs.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import redis.asyncio as redis
from redis.exceptions import RedisError

log = logging.getLogger(__name__)

CHANNEL = "th:invalidate"


def key_message(key_id: str) -> str:
    return f"key:{key_id}"


def customer_message(customer_id: str) -> str:
    return f"customer:{customer_id}"


async def publish(url: str, message: str) -> None:
    """Publish one message from a process that does not subscribe (the CLI)."""
    client = redis.Redis.from_url(url)
    try:
        await client.publish(CHANNEL, message)
    except (RedisError, OSError):
        log.warning("could not publish %s: other processes see it within their cache TTL", message)
    finally:
        await client.aclose()


class Invalidations:
    """Publishes invalidations and applies the ones other processes publish.

    `on_message(kind, id)` is called with `("key", key_id)` or `("customer", customer_id)`.
    """

    def __init__(self, url: str, on_message: Callable[[str, str], None]) -> None:
        self.client = redis.Redis.from_url(url)
        self.on_message = on_message
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def start(self) -> None:
        """Subscribe; returns once the subscription is in place."""
        self._task = asyncio.create_task(self._listen(), name="invalidations")
        waiter = asyncio.create_task(self._subscribed.wait())
        done, _ = await asyncio.wait(
            {self._task, waiter}, timeout=5.0, return_when=asyncio.FIRST_COMPLETED
        )
        waiter.cancel()
        if self._task in done:
            self._task.result()

    async def publish(self, message: str) -> None:
        """Tell every process (this one included) to drop what `message` names."""
        try:
            await self.client.publish(CHANNEL, message)
        except (RedisError, OSError):
            log.warning("could not publish %s: other processes see it within their TTL", message)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.client.aclose()

    async def _listen(self) -> None:
        async with self.client.pubsub() as pubsub:
            await pubsub.subscribe(CHANNEL)
            self._subscribed.set()
            while True:
                try:
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                except (RedisError, OSError):
                    log.warning("invalidation channel lost; retrying in 1 s")
                    await asyncio.sleep(1.0)
                    with contextlib.suppress(RedisError, OSError):
                        await pubsub.subscribe(CHANNEL)
                    continue
                if message is None or message.get("type") != "message":
                    continue
                kind, _, ident = bytes(message["data"]).decode().partition(":")
                if kind in ("key", "customer") and ident:
                    self.on_message(kind, ident)
