"""One process's services, built from settings, started and stopped together.

`Runtime` owns the database engine, the catalog, the key authenticator, the rate limiter, the
group-committing ledger and usage writers, the pooled upstream HTTP client (aiohttp: its pool
costs ~0.05-0.1 ms of CPU a request where httpx's costs ~2 ms, see bench/), payments (Stripe
when configured; auto top-up watches the ledger's holds), and the background jobs (hold and
grant expiry sweeps, subscription rollover, the billing period close, last-used flushes, the
webhook worker with its own HTTP client, and the metered sessions' extender and reaper, every
slice / 5 seconds). It hands the Prometheus metrics' listeners to the ledger, the usage
recorder, the denial log and the webhook worker (`observability.metrics`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import aiohttp

from tollhouse.alerts import CreditWatch
from tollhouse.billing import BillingTerms, CloseReport
from tollhouse.billing import service as billing
from tollhouse.catalog import Catalog, load_catalog
from tollhouse.clock import SYSTEM_CLOCK, Clock
from tollhouse.config import Settings
from tollhouse.errors import TollhouseError
from tollhouse.gateway.quotas import QuotaGuard, QuotaReached
from tollhouse.gateway.session_guard import SessionGuard
from tollhouse.gateway.tokens import warm_up
from tollhouse.keys import KeyAuthenticator, Principal
from tollhouse.ledger import Ledger
from tollhouse.metering import UsageRecorder
from tollhouse.metering.denials import DENIED_STATUSES, DenialLog
from tollhouse.observability import metrics
from tollhouse.payments import Payments
from tollhouse.payments import service as payments_service
from tollhouse.ratelimit import InFlightLimiter, RateLimiter, storage_from_url
from tollhouse.server.invalidation import (
    Invalidations,
    customer_message,
    key_message,
    sessions_message,
)
from tollhouse.sessions import ReapReport
from tollhouse.sessions import service as session_service
from tollhouse.storage import Database
from tollhouse.subscriptions import PlanChange
from tollhouse.subscriptions import service as subscriptions
from tollhouse.webhooks import WebhookWorker

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 30.0
METER_TICKS_PER_SLICE = 5
"""`meter_sessions` runs this many times per slice of the catalog's `compute_sessions`."""


class Runtime:
    """Every long-lived object of one tollhouse process.

    Build with `Runtime(settings)`, then `await start()`; `await stop()` drains background
    work (settlements, batched writes) before closing connections.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        clock: Clock = SYSTEM_CLOCK,
        catalog: Catalog | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.catalog = catalog or load_catalog(settings.catalog)
        self.db = Database(settings.database_url)
        self.authenticator = KeyAuthenticator(
            self.db, secret=self.key_secret, clock=clock, cache_ttl_seconds=30.0
        )
        self.limiter = RateLimiter(
            storage_from_url(
                settings.redis_url or "memory://",
                clock=clock,
                on_failure=settings.redis_failure_policy,
            )
        )
        self.in_flight = InFlightLimiter(
            self.limiter.storage, lease_seconds=settings.in_flight_lease_seconds
        )
        """Caps on gateway calls under way (`api.in_flight`), on the rate limiter's storage."""
        self.ledger = Ledger(self.db, clock=clock, hold_ttl_seconds=settings.hold_timeout_seconds)
        self.recorder = UsageRecorder(self.db, clock=clock, known_meters=set(self.catalog.meters))
        self.denials = DenialLog(
            self.db, clock=clock, spawn=lambda c: self.spawn(c, name="denials")
        )
        self.quotas = QuotaGuard(
            self.db, catalog=self.catalog, clock=clock, on_reached=self._quota_reached
        )
        self.sessions = SessionGuard(
            self.db,
            self.ledger,
            catalog=self.catalog,
            clock=clock,
            on_change=self.invalidate_sessions,
        )
        self.credits = CreditWatch(
            self.db, clock=clock, spawn=lambda coro: self.spawn(coro, name="credit alert")
        )
        self.invalidations = Invalidations(self.db, settings.redis_url, self._drop, clock=clock)
        self.webhooks = WebhookWorker(self.db, clock=clock)
        self.billing_terms = BillingTerms.from_settings(settings)
        self.payments = Payments.from_settings(
            settings,
            self.db,
            self.ledger,
            catalog=self.catalog,
            clock=clock,
            spawn=self.spawn,
            on_customer_change=self.invalidate_customer,
        )
        self.ledger.watch_holds(self.payments.observe)
        self.ledger.watch_holds(self.credits.observe_hold)
        self.ledger.watch_holds(metrics.hold_placed)
        self.ledger.watch_settlements(metrics.hold_settled)
        self.ledger.watch_commits(metrics.ledger_committed)
        self.recorder.watch(metrics.usage_events)
        self.denials.watch_drops(metrics.denials_dropped)
        self.webhooks.watch(metrics.webhook_attempt)
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._meter: asyncio.Task[None] | None = None

    @property
    def key_secret(self) -> bytes:
        return self.settings.key_secret.get_secret_value().encode()

    @property
    def http(self) -> aiohttp.ClientSession:
        """The pooled upstream client (exists between start and stop)."""
        if self._http is None:
            raise RuntimeError("Runtime not started")
        return self._http

    async def start(self) -> None:
        """Open connections and start the background writers and sweeper."""
        warm_up()
        connector = aiohttp.TCPConnector(limit=512, limit_per_host=256, keepalive_timeout=60)
        self._http = aiohttp.ClientSession(connector=connector, auto_decompress=False)
        await self.ledger.start()
        await self.recorder.start()
        self.authenticator.start()
        self.in_flight.start()
        await self.invalidations.start()
        await self.payments.start()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="sweeper")
        self._meter = asyncio.create_task(self._meter_forever(), name="sessions.tick")
        if self.settings.deliver_webhooks:
            await self.webhooks.start()

    async def stop(self) -> None:
        """Finish background work (settlements and the writes they queue: for at most
        `settings.settle_seconds`), then close everything, the writers after writing what is
        queued. Safe to call twice."""
        for task in (self._sweeper, self._meter):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._sweeper = self._meter = None
        await self.webhooks.stop()
        try:
            async with asyncio.timeout(self.settings.settle_seconds):
                await self.drain()
        except TimeoutError:
            log.error(
                "shutdown grace over (%g s to settle) with %d settlements or writes "
                "unfinished (their holds expire and are voided by the sweeper)",
                self.settings.settle_seconds,
                len(self._tasks),
            )
        await self.payments.stop()
        await self.invalidations.stop()
        await self.authenticator.stop()
        await self.recorder.stop()
        await self.ledger.stop()
        if self._http is not None:
            await self._http.close()
            self._http = None
        await self.in_flight.close()
        await self.limiter.close()
        await self.db.dispose()

    async def change_plan(
        self, customer_id: str, plan: str, *, require_payment_method: bool
    ) -> PlanChange:
        """Move a customer to `plan` (`subscriptions.change_plan`: an upgrade now, prorated;
        a downgrade at the period end), then deliver the credits the change owes and drop
        every cache of the customer's plan. The API, the portal and the console all change
        plans here.

        `require_payment_method`: a customer's own move to a paid plan needs a payment
        method on file (an operator's is manual billing).

        Raises:
            PaymentMethodRequired: (402) none on file for a paid plan, when required.
            PlanNotFound, SubscriptionNotFound, and the change's own refusals (409, 422).
        """
        async with self.db.transaction() as session:
            if require_payment_method:
                await payments_service.require_payment_method(
                    session, customer_id, plan, catalog=self.catalog
                )
            change = await subscriptions.change_plan(
                session, customer_id, plan, catalog=self.catalog, clock=self.clock
            )
        await subscriptions.deliver_grants(
            self.db, ledger=self.ledger, clock=self.clock, customer_id=customer_id
        )
        await self.invalidate_customer(customer_id)
        return change

    async def invalidate_key(self, key_id: str) -> None:
        """After a key's change commits: drop it from this process's cache at once, and from
        every other process's within 2 s (`server.invalidation`). Call it once the change's
        transaction has ended: it writes a row in a transaction of its own (on SQLite, over
        the one pooled connection)."""
        self._drop("key", key_id)
        await self.invalidations.announce(key_message(key_id))

    async def invalidate_customer(self, customer_id: str) -> None:
        """After a customer's plan or period changes: drop its cached keys (their plan) and
        quota view, here at once and in every other process within 2 s (called like
        `invalidate_key`)."""
        self._drop("customer", customer_id)
        await self.invalidations.announce(customer_message(customer_id))

    async def invalidate_sessions(self, customer_id: str) -> None:
        """After a customer's session starts or ends (or sidecar usage counts into one):
        read its sessions again, here at once and in every other process within 2 s."""
        self._drop("sessions", customer_id)
        await self.invalidations.announce(sessions_message(customer_id))

    def _drop(self, kind: str, ident: str) -> None:
        if kind == "key":
            self.authenticator.invalidate(ident)
            return
        self.sessions.invalidate(ident)
        if kind == "customer":
            self.authenticator.invalidate_customer(ident)
            self.quotas.invalidate(ident)
            self.credits.invalidate(ident)

    def note_denial(
        self, principal: Principal | None, error: TollhouseError, *, model: str | None, route: str
    ) -> None:
        """Log a call refused with 402, 403 or 429 (`metering.denials`) for a customer's key;
        other errors, and callers not yet known, are not denials."""
        if (
            principal is not None
            and principal.customer_id is not None
            and error.status in DENIED_STATUSES
        ):
            self.denials.note(
                customer_id=principal.customer_id, key_id=principal.key_id, plan=principal.plan,
                reason=error.code, model=model, route=route,
            )  # fmt: skip

    def _quota_reached(self, reached: QuotaReached) -> None:
        self.spawn(self._record_quota_reached(reached), name="quota.reached")

    async def _record_quota_reached(self, reached: QuotaReached) -> None:
        """Emit `quota.reached` (once across processes: `subscriptions.record_quota_reached`)."""
        async with self.db.transaction() as session:
            await subscriptions.record_quota_reached(
                session,
                customer_id=reached.customer_id,
                meter=reached.meter,
                limit=reached.limit,
                used=reached.used,
                resets_at=reached.resets_at,
                refused=reached.refused,
                clock=self.clock,
            )

    def spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        """Run `coro` in the background, keep a reference, log its failure; returns its task."""
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    async def run_here(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
        """Await `coro` in the calling task (no new task: a measurable cost per gateway call),
        waited for by `drain` like `spawn`ed work; a failure is logged, not raised."""
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await coro
        except Exception:
            log.exception("%s failed", name)
        finally:
            self._tasks.discard(task)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def drain(self) -> None:
        """Wait until every background task spawned so far (and those they spawn), and every
        `run_here` under way, is done, and the usage events they queued are written."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
        await self.recorder.flush()

    async def sweep(self) -> None:
        """The periodic jobs, every 30 s: expire grants, void stale holds, then
        `close_periods`, then finish refunds a crash left pending, bring the payments to the
        invoices, and reload the auto top-up rules."""
        await self.ledger.sweep(self.clock.now())
        await self.close_periods()
        await billing.complete_refunds(self.db, self.ledger, clock=self.clock)
        await self.bill_payments()
        await self.payments.refresh()

    async def bill_payments(self) -> None:
        """Bring the payments to the invoices: a credit note for each payment refund that has
        none, invoices paid by the provider's subscription payments (`billing.service.
        from_payments`). By the sweep, and at once after a refund or a Stripe payment."""
        await billing.document_payment_refunds(self.db, terms=self.billing_terms, clock=self.clock)
        await billing.apply_subscription_payments(self.db, clock=self.clock)

    async def close_periods(self) -> CloseReport:
        """Roll subscriptions whose billing period ended (idempotent; catches up after
        downtime), deliver the credits they owe, then invoice every period boundary crossed
        and number the invoices (`billing.close_periods`)."""
        report = await subscriptions.roll_over(
            self.db, catalog=self.catalog, clock=self.clock, ledger=self.ledger
        )
        for customer_id in report.changed_customers:
            await self.invalidate_customer(customer_id)
        await subscriptions.deliver_grants(self.db, ledger=self.ledger, clock=self.clock)
        return await billing.close_periods(
            self.db, catalog=self.catalog, terms=self.billing_terms, clock=self.clock
        )

    async def meter_sessions(self) -> ReapReport:
        """One pass of the metered sessions' extender and reaper (`sessions.service.tick`):
        end what is due, settle what a dead process left, capture used-up slices, hold the
        next slice of sessions with less than one left. Every process runs it, from the
        database alone; two at once do each thing once."""
        return await session_service.tick(
            self.db, self.ledger, catalog=self.catalog, clock=self.clock
        )

    async def _meter_forever(self) -> None:
        """`meter_sessions` at start (what a restart finds is reaped at once), then every
        slice / `METER_TICKS_PER_SLICE` seconds."""
        interval = self.catalog.compute_sessions.slice_seconds / METER_TICKS_PER_SLICE
        while True:
            try:
                await self.meter_sessions()
            except Exception:
                log.exception("metered sessions pass failed")
            await asyncio.sleep(interval)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)
            try:
                await self.sweep()
            except Exception:
                log.exception("periodic sweep failed")
