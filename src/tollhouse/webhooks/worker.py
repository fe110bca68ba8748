"""The webhook worker: one background task per serving process, never on a gateway call's path.

Every `POLL_SECONDS` (1 s; at once again after a full page of events) it runs a dispatcher
pass (`webhooks.dispatch`: outbox events become delivery rows), then claims as many due
deliveries as it has free slots (`concurrency`, 16) and starts an attempt for each
(`webhooks.delivery`); while every slot is busy it claims again as soon as one frees.
Attempts run as tasks of their own, so one slow receiver holds one slot for at most
`ATTEMPT_TIMEOUT_SECONDS`, not the loop. It has its own aiohttp client (not the gateway's
pool), at most `concurrency` connections.

Its database work is a few short transactions a second, none held across a network call. A
failing database is logged once per outage and tried again a second later. Stopping
cancels the attempts still waiting on a receiver (their leases run out and they are sent
again) and writes the outcomes already in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from typing import Any

import aiohttp
from sqlalchemy.exc import SQLAlchemyError

from tollhouse.clock import Clock
from tollhouse.storage import Database
from tollhouse.webhooks.delivery import DEFAULT_BATCH, Claimed, Recorder, claim_due, send
from tollhouse.webhooks.dispatch import PAGE, Dispatcher
from tollhouse.webhooks.models import DeliveryStatus

log = logging.getLogger(__name__)

POLL_SECONDS = 1.0
"""How often an idle worker looks for new events and due deliveries."""


class WebhookWorker:
    """Delivers webhooks in the background: `await start()`, `await stop()` (tests that
    drive time step by step call `webhooks.delivery.deliver_due` instead)."""

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
        self._recorder = Recorder(db, clock=clock, rng=random.Random())
        self._http: aiohttp.ClientSession | None = None
        self._loop: asyncio.Task[None] | None = None
        self._attempts: set[asyncio.Task[Any]] = set()
        self._freed = asyncio.Event()
        """Set when an attempt ends (a slot is free)."""
        self._listeners: tuple[Callable[[DeliveryStatus], None], ...] = ()

    def watch(self, listener: Callable[[DeliveryStatus], None]) -> None:
        """Call `listener(status)` once each attempt is recorded, with the status it gave its
        delivery: `succeeded`, `pending` (due again) or `failed` (given up). Quick, never
        raising."""
        self._listeners = (*self._listeners, listener)

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
        """Stop the loop, cancel the attempts still waiting on a receiver, write the outcomes
        already in, close the client. Safe to call twice."""
        tasks = [task for task in (self._loop, *self._attempts) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._loop = None
        await self._recorder.flush()
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def _claim(self) -> bool:
        """Start attempts for due deliveries in the free slots; True when every free slot
        was filled (more may be due). No query while no endpoint is enabled: an
        installation without webhooks pays one small query a second."""
        free = self.concurrency - len(self._attempts)
        if free <= 0 or not self.dispatcher.enabled_endpoints:
            return False
        claimed = await claim_due(self.db, clock=self.clock, limit=free)
        for item in claimed:
            self._spawn(item)
        return len(claimed) == free

    def _spawn(self, claimed: Claimed) -> None:
        task = asyncio.create_task(
            self._attempt(claimed), name=f"webhooks.attempt {claimed.delivery_id}"
        )
        self._attempts.add(task)
        task.add_done_callback(self._done)

    async def _attempt(self, claimed: Claimed) -> None:
        outcome = await send(self.http, claimed, clock=self.clock)
        status = await self._recorder.record(claimed, outcome)
        if status is not None:
            for listener in self._listeners:
                listener(status)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._attempts.discard(task)
        self._freed.set()
        if not task.cancelled() and task.exception() is not None:
            log.warning("webhook attempt not recorded: %r", task.exception())

    async def _run(self) -> None:
        """Dispatch every `poll_seconds` (at once again after a full page); claim after each
        dispatch, and whenever an attempt frees a slot while every slot was busy."""
        loop = asyncio.get_running_loop()
        next_dispatch = loop.time()
        failing = False
        while True:
            filled = False
            self._freed.clear()
            try:
                if loop.time() >= next_dispatch:
                    read = await self.dispatcher.dispatch()
                    next_dispatch = loop.time() + (0 if read >= PAGE else self.poll_seconds)
                filled = await self._claim()
            except (SQLAlchemyError, OSError) as error:
                if not failing:
                    log.warning("webhook delivery paused (%s); retrying every second", error)
                failing = True
                next_dispatch = loop.time() + self.poll_seconds
            except Exception:
                log.exception("webhook delivery pass failed")
                next_dispatch = loop.time() + self.poll_seconds
            else:
                if failing:
                    log.warning("webhook delivery resumed")
                failing = False
            wait = max(next_dispatch - loop.time(), 0)
            if filled or len(self._attempts) >= self.concurrency:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._freed.wait(), wait)
            else:
                await asyncio.sleep(wait)
