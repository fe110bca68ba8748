"""GCRA state in Redis, shared by every process: one Lua script, one round trip per decision.

The script (`lua/gcra.lua`, loaded with `importlib.resources`) reads the server's `TIME`, so
all processes agree on time whatever their own clocks say, and does the all-or-nothing check
and the writes atomically. It is called by its SHA1 (EVALSHA), with a SCRIPT LOAD and one
retry on NOSCRIPT (the first call, or after a Redis restart).

Keys are `th:rl:<caller key>`, holding the TAT as integer microseconds since the Unix epoch,
with a PEXPIRE at that TAT: a key disappears exactly when it stops carrying information.
With Redis Cluster, the keys of one decision must share a hash slot (put a `{hash tag}` in
them); a plain Redis or a Sentinel-managed primary has no such constraint.

Every Redis failure (connection refused, timeout, script error, unexpected reply) becomes
`RateLimitStorageError` in `_run`, the only place that talks to Redis. Connection errors are
retried once, at once (a stale pooled connection); timeouts are not retried, since the
script may already have run. Socket timeouts default to 1 s (override in the URL with
`?socket_timeout=0.25&socket_connect_timeout=0.25`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import TypeVar

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

from tollhouse.ratelimit.errors import RateLimitStorageError
from tollhouse.ratelimit.storage import Cell, Mode, Outcome

KEY_PREFIX = "th:rl:"
"""Namespace of every rate-limit key in Redis."""

DEFAULT_SOCKET_TIMEOUT_SECONDS = 1.0

T = TypeVar("T")


def load_script(name: str = "gcra.lua") -> str:
    """The text of `tollhouse/ratelimit/lua/<name>`."""
    return resources.files("tollhouse.ratelimit").joinpath("lua", name).read_text("utf-8")


GCRA_SCRIPT = load_script()


class RedisStorage:
    """`Storage` on Redis (redis.asyncio, redis-py >= 5)."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = KEY_PREFIX,
        socket_timeout_seconds: float = DEFAULT_SOCKET_TIMEOUT_SECONDS,
    ) -> None:
        self._prefix = prefix
        self._client: aioredis.Redis = aioredis.Redis.from_url(
            url,
            socket_timeout=socket_timeout_seconds,
            socket_connect_timeout=socket_timeout_seconds,
            retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        )
        self._sha = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()

    @property
    def client(self) -> aioredis.Redis:
        """The underlying client (for diagnostics and benchmarks)."""
        return self._client

    async def _run(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await `call()`, turning every Redis or socket failure into RateLimitStorageError."""
        try:
            return await call()
        except (RedisError, OSError, TimeoutError) as exc:
            raise RateLimitStorageError(
                f"rate-limit storage failed: {type(exc).__name__}: {exc}", backend="redis"
            ) from exc

    async def gcra(self, cells: Sequence[Cell], mode: Mode) -> Outcome:
        """See `Storage.gcra`; one EVALSHA."""
        keys = [self._prefix + cell.key for cell in cells]
        args: list[str | int] = [mode]
        for cell in cells:
            args.append(cell.increment_us)
            args.append(cell.window_us)
        reply = await self._run(lambda: self._evalsha(keys, args))
        if not isinstance(reply, list) or len(reply) != len(cells) + 2:
            raise RateLimitStorageError(f"rate-limit script returned {reply!r}", backend="redis")
        return Outcome(
            allowed=int(reply[0]) == 1,
            now_us=int(reply[1]),
            tats_us=[int(value) for value in reply[2:]],
        )

    async def _evalsha(self, keys: list[str], args: list[str | int]) -> object:
        """EVALSHA; on NOSCRIPT load the script and retry once (what `register_script` does,
        without its per-call `isinstance` check against a Protocol-derived class)."""
        try:
            return await self._client.evalsha(self._sha, len(keys), *keys, *args)
        except NoScriptError:
            self._sha = await self._client.script_load(GCRA_SCRIPT)
            return await self._client.evalsha(self._sha, len(keys), *keys, *args)

    async def clear(self, key: str) -> None:
        await self._run(lambda: self._client.delete(self._prefix + key))

    async def close(self) -> None:
        try:
            await self._client.aclose()
        except (RedisError, OSError):  # closing a broken connection: nothing left to release
            pass
