"""One load at a time per key: concurrent callers asking for the same key share one call.

The in-memory views of the hot path (a customer's quotas, sessions, credit alert) are read
from the database when missing or stale; a burst of calls for one customer must cause one
query, not one per call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """`run(key, load)` awaits `load()` for the first caller of a key; callers arriving while
    it runs get its result (or its exception) instead of calling `load` again. A caller that
    is cancelled does not cancel the load the others wait for."""

    def __init__(self) -> None:
        self._pending: dict[K, asyncio.Future[V]] = {}

    async def run(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The result of one `load()` for `key`, shared with concurrent callers."""
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await load()
            future.set_result(value)
            return value
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it
            raise
        finally:
            del self._pending[key]
