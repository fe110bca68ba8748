"""GCRA state in Redis, shared by every process: one Lua script, one round trip per decision
at most (decisions made while a call is under way share the next one).

The script (`lua/gcra.lua`, loaded with `importlib.resources`) reads the server's `TIME`, so
all processes agree on time whatever their own clocks say, and does each decision's
all-or-nothing check and writes atomically. It is called by its SHA1 (EVALSHA), with a SCRIPT
LOAD and one retry on NOSCRIPT (the first call, or after a Redis restart).

Coalescing: while one EVALSHA of this process is under way, the decisions asked for queue up,
and go together in the next one (at most `MAX_DECISIONS_PER_CALL`), in the order asked. The
script runs them one after the other, each seeing the writes of those before it, so the
outcome is what one call per decision at that instant would give; a process under load pays
one round trip and one client call for many decisions instead of one each. An idle process
sends a decision at once (no timer, no added latency). A caller cancelled while its decision
waits withdraws it.

Keys are `th:rl:<caller key>`, holding the TAT as integer microseconds since the Unix epoch,
with a PEXPIRE at that TAT: a key disappears exactly when it stops carrying information.
One call may carry keys of several customers, so this needs one Redis primary (standalone or
managed by Sentinel), not Redis Cluster, whose scripts must keep to one hash slot.

In-flight slots (`take_slot`, `give_slot`, `renew_slots`) are sorted sets `th:if:<key>` of
request ids scored by lease expiry, run by `lua/inflight.lua` (one call each, not coalesced:
redis-py's registered script, which loads it again after NOSCRIPT).

Every Redis failure (connection refused, timeout, script error, unexpected reply) becomes
`RateLimitStorageError` in `_run`, the only place that talks to Redis, and fails every
decision of that call. Connection errors are retried once, at once (a stale pooled
connection); timeouts are not retried, since the script may already have run. Socket timeouts
default to 1 s (override in the URL with `?socket_timeout=0.25&socket_connect_timeout=0.25`).
"""

from __future__ import annotations

import asyncio
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
from tollhouse.ratelimit.storage import Cell, Mode, Outcome, Slot

KEY_PREFIX = "th:rl:"
"""Namespace of every rate-limit key in Redis."""

SLOT_PREFIX = "th:if:"
"""Namespace of the in-flight slots' sorted sets (`lua/inflight.lua`)."""

DEFAULT_SOCKET_TIMEOUT_SECONDS = 1.0

MAX_DECISIONS_PER_CALL = 64
"""Most queued decisions one EVALSHA carries (bounds how long one script blocks Redis)."""

T = TypeVar("T")

_Waiting = tuple[Sequence[Cell], Mode, asyncio.Future[Outcome]]
"""A decision queued behind the call under way: its cells, mode and caller's future."""


def load_script(name: str = "gcra.lua") -> str:
    """The text of `tollhouse/ratelimit/lua/<name>`."""
    return resources.files("tollhouse.ratelimit").joinpath("lua", name).read_text("utf-8")


GCRA_SCRIPT = load_script()
SLOTS_SCRIPT = load_script("inflight.lua")


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
        self._slots = self._client.register_script(SLOTS_SCRIPT)
        self._busy = False
        """An EVALSHA of this storage is under way: new decisions wait in `_waiting`."""
        self._waiting: list[_Waiting] = []
        self._flushes: set[asyncio.Task[None]] = set()

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
        """See `Storage.gcra`; at once in one EVALSHA, or in the next one with the decisions
        asked for while an earlier call is under way (see the module docstring)."""
        if self._busy:
            future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
            self._waiting.append((cells, mode, future))
            return await future
        self._busy = True
        try:
            return (await self._decide([(cells, mode)]))[0]
        finally:
            self._send_waiting()

    def _send_waiting(self) -> None:
        """The call under way is over: send the decisions that queued meanwhile (those whose
        callers are still waiting), or become idle."""
        waiting = [item for item in self._waiting if not item[2].done()]
        batch = waiting[:MAX_DECISIONS_PER_CALL]
        self._waiting = waiting[MAX_DECISIONS_PER_CALL:]
        if not batch:
            self._busy = False
            return
        task = asyncio.get_running_loop().create_task(self._flush(batch), name="ratelimit.redis")
        self._flushes.add(task)
        task.add_done_callback(self._flushes.discard)

    async def _flush(self, batch: list[_Waiting]) -> None:
        try:
            outcomes = await self._decide([(cells, mode) for cells, mode, _ in batch])
        except RateLimitStorageError as exc:
            _fail(batch, exc)
        except BaseException as exc:  # cancelled (the loop is closing), or a bug: none may hang
            _fail(
                batch,
                RateLimitStorageError(
                    f"rate-limit decision failed: {type(exc).__name__}", backend="redis"
                ),
            )
            raise
        else:
            for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                if not future.done():
                    future.set_result(outcome)
        finally:
            self._send_waiting()

    async def _decide(self, decisions: Sequence[tuple[Sequence[Cell], Mode]]) -> list[Outcome]:
        """One EVALSHA for `decisions`; their outcomes in the same order."""
        keys: list[str] = []
        args: list[str | int] = [len(decisions)]
        for cells, mode in decisions:
            args.append(mode)
            args.append(len(cells))
            for cell in cells:
                keys.append(self._prefix + cell.key)
                args.append(cell.increment_us)
                args.append(cell.window_us)
        reply = await self._run(lambda: self._evalsha(keys, args))
        if not isinstance(reply, list) or len(reply) != 1 + len(decisions) + len(keys):
            raise RateLimitStorageError(f"rate-limit script returned {reply!r}", backend="redis")
        now_us = int(reply[0])
        outcomes: list[Outcome] = []
        at = 1
        for cells, _ in decisions:
            end = at + 1 + len(cells)
            outcomes.append(
                Outcome(
                    allowed=int(reply[at]) == 1,
                    now_us=now_us,
                    tats_us=[int(value) for value in reply[at + 1 : end]],
                )
            )
            at = end
        return outcomes

    async def _evalsha(self, keys: list[str], args: list[str | int]) -> object:
        """EVALSHA; on NOSCRIPT load the script and retry once (what `register_script` does,
        without its per-call `isinstance` check against a Protocol-derived class)."""
        try:
            return await self._client.evalsha(self._sha, len(keys), *keys, *args)
        except NoScriptError:
            self._sha = await self._client.script_load(GCRA_SCRIPT)
            return await self._client.evalsha(self._sha, len(keys), *keys, *args)

    async def take_slot(self, slots: Sequence[Slot], member: str, lease_ms: int) -> int | None:
        """See `Storage.take_slot`: one run of `lua/inflight.lua` (the server's clock)."""
        keys = [SLOT_PREFIX + slot.key for slot in slots]
        args: list[str | int] = ["take", member, lease_ms, *(slot.cap for slot in slots)]
        full = await self._run(lambda: self._slots(keys, args))
        if not isinstance(full, int) or not 0 <= full <= len(slots):
            raise RateLimitStorageError(f"in-flight script returned {full!r}", backend="redis")
        return None if full == 0 else full - 1

    async def give_slot(self, keys: Sequence[str], member: str) -> None:
        """See `Storage.give_slot`."""
        names = [SLOT_PREFIX + key for key in keys]
        await self._run(lambda: self._slots(names, ["give", member, 0]))

    async def renew_slots(self, held: Sequence[tuple[str, str]], lease_ms: int) -> None:
        """See `Storage.renew_slots`: one script run for them all."""
        if held:
            names = [SLOT_PREFIX + key for key, _ in held]
            args: list[str | int] = ["renew", "", lease_ms, *(member for _, member in held)]
            await self._run(lambda: self._slots(names, args))

    async def clear(self, key: str) -> None:
        await self._run(lambda: self._client.delete(self._prefix + key))

    async def close(self) -> None:
        """Wait for the decisions under way, then close the client's connections."""
        while self._flushes:
            await asyncio.gather(*self._flushes, return_exceptions=True)
        try:
            await self._client.aclose()
        except (RedisError, OSError):  # closing a broken connection: nothing left to release
            pass


def _fail(batch: list[_Waiting], error: Exception) -> None:
    for _, _, future in batch:
        if not future.done():
            future.set_exception(error)
