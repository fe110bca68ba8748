"""The webhook worker: one background task per serving process, never on a gateway call's path.

Every `POLL_SECONDS` (1 s), or at once while work is waiting, it runs `tick()`: a dispatcher
pass (`webhooks.dispatch`: outbox events become delivery rows) and then claims as many due
deliveries as it has free slots (`concurrency`, 16) and starts an attempt for each
(`webhooks.delivery`). Attempts run as tasks of their own, so one slow receiver holds one
slot for at most `ATTEMPT_TIMEOUT_SECONDS`, not the loop. It has its own aiohttp client (not
the gateway's pool), at most `concurrency` connections.

Its database work is a few short transactions a second, none held across a network call. A
failing database is logged once per outage and tried again at the next tick. Stopping
cancels the attempts under way: their leases run out and they are sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from typing import Any

import aiohttp
from sqlalchemy.exc import SQLAlchemyError

from tollhouse.clock import Clock
from tollhouse.storage import Database
from tollhouse.webhooks.delivery import DEFAULT_BATCH, Claimed, attempt, claim_due
from tollhouse.webhooks.dispatch import PAGE, Dispatcher

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
"""How often an idle worker looks for new events and due deliveries."""


class WebhookWorker:
    """Delivers webhooks in the background: `await start()`, `await stop()`; `tick()` is one
    pass (tests may call it, or `webhooks.delivery.deliver_due`, instead of the loop)."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock,
        concurrency: int = DEFAULT_BATCH,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.db = db
        self.clock = clock
        self.concurrency = concurrency
        self.poll_seconds = poll_seconds
        self.dispatcher = Dispatcher(db, clock=clock)
        self._rng = random.Random()
        self._http: aiohttp.ClientSession | None = None
        self._loop: asyncio.Task[None] | None = None
        self._attempts: set[asyncio.Task[Any]] = set()

    @property
    def http(self) -> aiohttp.ClientSession:
        """The worker's own HTTP client (exists between start and stop)."""
        if self._http is None:
            raise RuntimeError("WebhookWorker not started")
        return self._http

    async def start(self) -> None:
        """Open the HTTP client and start the loop."""
        connector = aiohttp.TCPConnector(limit=self.concurrency, keepalive_timeout=30)
        self._http = aiohttp.ClientSession(connector=connector)
        self._loop = asyncio.create_task(self._run(), name="webhooks.deliver")

    async def stop(self) -> None:
        """Stop the loop, cancel attempts under way, close the client. Safe to call twice."""
        tasks = [task for task in (self._loop, *self._attempts) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop = None
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def tick(self) -> bool:
        """One pass: dispatch, then start attempts for due deliveries in the free slots (no
        query when no endpoint is enabled: an installation without webhooks pays one small
        query a second). Returns True when more work may be waiting (a full page of events,
        or every free slot filled).

        Raises:
            SQLAlchemyError: the database failed (the next tick tries again).
        """
        read = await self.dispatcher.dispatch()
        free = self.concurrency - len(self._attempts)
        if free <= 0 or self.dispatcher.enabled_endpoints == 0:  # nothing could be claimed
            return read >= PAGE
        claimed = await claim_due(self.db, clock=self.clock, limit=free)
        for item in claimed:
            self._spawn(item)
        return read >= PAGE or len(claimed) == free

    async def drain(self) -> None:
        """Wait for the attempts under way to finish (tests)."""
        while self._attempts:
            await asyncio.gather(*list(self._attempts), return_exceptions=True)

    def _spawn(self, claimed: Claimed) -> None:
        task = asyncio.create_task(
            attempt(self.db, self.http, claimed, clock=self.clock, rng=self._rng),
            name=f"webhooks.attempt {claimed.delivery_id}",
        )
        self._attempts.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._attempts.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("webhook attempt not recorded: %r", task.exception())

    async def _run(self) -> None:
        failing = False
        while True:
            busy = False
            try:
                busy = await self.tick()
            except (SQLAlchemyError, OSError) as error:
                if not failing:
                    log.warning("webhook delivery paused (%s); retrying every second", error)
                failing = True
            except Exception:
                log.exception("webhook delivery pass failed")
            else:
                if failing:
                    log.warning("webhook delivery resumed")
                failing = False
            await asyncio.sleep(0 if busy else self.poll_seconds)
