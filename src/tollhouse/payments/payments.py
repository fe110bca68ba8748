"""`Payments`: one process's payments services over its database, ledger and catalog, with
Stripe when it is configured, and the auto top-up watcher the ledger tells of every hold."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from tollhouse.catalog import Catalog
from tollhouse.clock import Clock
from tollhouse.config import Settings
from tollhouse.ledger import HoldView, Ledger
from tollhouse.payments.errors import PaymentsNotConfigured
from tollhouse.payments.schemas import AutoTopUpView, CheckoutView, PaymentView, WebhookOutcome
from tollhouse.payments.service import checkout, manual, stripe_events, top_ups
from tollhouse.payments.service.checkout import Item
from tollhouse.payments.service.records import Context
from tollhouse.payments.settings import StripeSettings
from tollhouse.storage import Database
from tollhouse.subscriptions import service as subscriptions

if TYPE_CHECKING:
    from tollhouse.payments.stripe_api import StripeApi

log = logging.getLogger(__name__)

Spawn = Callable[..., object]
"""`spawn(coroutine, name=...)`: run it in the background (`Runtime.spawn`)."""
CustomerChanged = Callable[[str], Awaitable[None]]
"""Called after a customer's plan or status changed (`Runtime.invalidate_customer`)."""


class Payments:
    """Manual payments and refunds, Stripe checkout and webhooks, auto top-up.

    Build it with `Payments.from_settings` (Stripe is on when `TOLLHOUSE_STRIPE_API_KEY` and
    `TOLLHOUSE_STRIPE_WEBHOOK_SECRET` are set), `await start()`, hand `observe` to
    `Ledger.watch_holds`, and `await stop()` at the end. Without Stripe, its operations raise
    `PaymentsNotConfigured` (503) and the rest works.
    """

    def __init__(
        self,
        db: Database,
        ledger: Ledger,
        *,
        catalog: Catalog,
        clock: Clock,
        stripe: StripeSettings | PaymentsNotConfigured,
        spawn: Spawn | None = None,
        on_customer_change: CustomerChanged | None = None,
    ) -> None:
        self.ctx = Context(db, ledger, catalog, clock)
        self._stripe_settings = stripe
        self._api: StripeApi | None = None
        if isinstance(stripe, StripeSettings):
            from tollhouse.payments.stripe_api import StripeApi  # the library only when used

            self._api = StripeApi(stripe)
        self._spawn = spawn or self._spawn_here
        self._tasks: set[asyncio.Task[Any]] = set()
        self._on_customer_change = on_customer_change
        self.watcher = top_ups.TopUpWatcher(
            on_crossing=lambda cid: self._spawn(self._fire(cid), name="payments.top_up"),
            on_recovery=lambda cid: self._spawn(self._rearm(cid), name="payments.rearm"),
        )
        self.observe: Callable[[HoldView], None] = self.watcher.observe
        """The ledger's hold listener (`Ledger.watch_holds`): the watcher's own method, so a
        hold of a customer without a rule costs one dict lookup."""

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        db: Database,
        ledger: Ledger,
        *,
        catalog: Catalog,
        clock: Clock,
        spawn: Spawn | None = None,
        on_customer_change: CustomerChanged | None = None,
    ) -> Payments:
        """Payments with Stripe configured from `settings`, when it is."""
        try:
            stripe: StripeSettings | PaymentsNotConfigured = StripeSettings.from_settings(settings)
        except PaymentsNotConfigured as missing:
            stripe = missing
        return cls(
            db, ledger, catalog=catalog, clock=clock, stripe=stripe, spawn=spawn,
            on_customer_change=on_customer_change,
        )  # fmt: skip

    @property
    def stripe(self) -> StripeApi:
        """The Stripe API client.

        Raises:
            PaymentsNotConfigured: Stripe's variables are not set.
        """
        if self._api is None:
            assert isinstance(self._stripe_settings, PaymentsNotConfigured)
            missing = self._stripe_settings
            raise PaymentsNotConfigured(missing.detail, **missing.extra)
        return self._api

    @property
    def has_stripe(self) -> bool:
        return self._api is not None

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the enabled auto top-up rules."""
        await self.refresh()

    async def refresh(self) -> None:
        """Reload the auto top-up rules (the periodic sweep calls it: rules changed by other
        processes take effect here within one sweep). Without Stripe none is watched (a
        top-up could not be paid)."""
        if self._api is None:
            return
        async with self.ctx.db.transaction() as session:
            self.watcher.load(await top_ups.enabled_rules(session))

    async def stop(self) -> None:
        """Finish the top-ups under way, close the Stripe client."""
        await self.drain()
        if self._api is not None:
            await self._api.close()

    async def drain(self) -> None:
        """Wait for the background work this object started itself (without `spawn`)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn_here(self, coro: Coroutine[Any, Any, Any], *, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    # -- payments -------------------------------------------------------------------------

    async def record_manual(
        self,
        customer_id: str,
        *,
        idempotency_key: str,
        pack: str | None = None,
        amount_micros: int | None = None,
        description: str = "",
    ) -> PaymentView:
        """An operator's payment of a credit pack or an amount of credits (`manual`)."""
        payment = await manual.record_manual(
            self.ctx, customer_id=customer_id, idempotency_key=idempotency_key, pack=pack,
            amount_micros=amount_micros, description=description,
        )  # fmt: skip
        await self._credited(customer_id)
        return payment

    async def refund(
        self, payment_id: str, *, amount_micros: int | None, idempotency_key: str
    ) -> PaymentView:
        """An operator's refund of a manual payment (`manual.refund_manual`)."""
        return await manual.refund_manual(
            self.ctx, payment_id, amount_micros=amount_micros, idempotency_key=idempotency_key
        )

    async def checkout(
        self,
        customer_id: str,
        item: Item,
        *,
        success_url: str,
        cancel_url: str,
        idempotency_key: str,
    ) -> CheckoutView:
        """A Stripe Checkout Session (`checkout.create_checkout`)."""
        return await checkout.create_checkout(
            self.ctx.db, self.stripe, catalog=self.ctx.catalog, clock=self.ctx.clock,
            customer_id=customer_id, item=item, success_url=success_url, cancel_url=cancel_url,
            idempotency_key=idempotency_key,
        )  # fmt: skip

    async def handle_stripe_webhook(self, payload: bytes, signature: str | None) -> WebhookOutcome:
        """Verify and apply one Stripe webhook delivery (`stripe_events`), once per event.

        Raises:
            PaymentsNotConfigured: Stripe's variables are not set.
            WebhookSignatureInvalid: missing, forged or stale signature; not an event.
        """
        from tollhouse.payments.stripe_api import verify_event

        event = verify_event(payload, signature, self.stripe.settings)
        outcome, synced = await stripe_events.handle(self.ctx, event)
        if synced.customer_id is not None:
            await self._changed(synced.customer_id)
        return outcome

    async def _changed(self, customer_id: str) -> None:
        """After a customer's plan, status or wallet changed: deliver the credits its
        subscription owes, drop cached views, re-arm its auto top-up if credits arrived."""
        await subscriptions.deliver_grants(
            self.ctx.db, ledger=self.ctx.ledger, clock=self.ctx.clock, customer_id=customer_id
        )
        if self._on_customer_change is not None:
            await self._on_customer_change(customer_id)
        await self._credited(customer_id)

    # -- auto top-up ----------------------------------------------------------------------

    async def set_auto_top_up(
        self, customer_id: str, *, enabled: bool, threshold_micros: int, pack: str
    ) -> AutoTopUpView:
        """Set a customer's auto top-up rule (`top_ups.configure`); enabling needs Stripe.

        Raises:
            PaymentsNotConfigured: enabling without Stripe.
        """
        if enabled:
            _ = self.stripe
        rule = await top_ups.configure(
            self.ctx, customer_id, enabled=enabled, threshold_micros=threshold_micros, pack=pack
        )
        self.watcher.set(rule)
        return rule

    async def _fire(self, customer_id: str) -> None:
        crossing = await top_ups.claim(self.ctx, customer_id)
        if crossing is None:
            self.watcher.disarmed(customer_id)
            return
        payment = await top_ups.top_up(self.ctx, self.stripe, customer_id, crossing)
        log.info("auto top-up of %s: payment %s %s", customer_id, payment.id, payment.status)
        await self._credited(customer_id)

    async def _rearm(self, customer_id: str) -> None:
        await top_ups.rearm(self.ctx, customer_id)

    async def _credited(self, customer_id: str) -> None:
        """Credits may have arrived: re-arm the customer's rule if the wallet is back at its
        threshold (one balance read, only for customers with a rule)."""
        if self.watcher.has_rule(customer_id):
            balance = await top_ups.available(self.ctx, customer_id)
            if self.watcher.recovered(customer_id, balance):
                await top_ups.rearm(self.ctx, customer_id)
