"""Auto top-up: buy a credit pack off-session when a debit takes the wallet below the
customer's threshold, at most once per crossing.

The trigger costs the gateway no database read: the ledger tells `TopUpWatcher.observe` of
every new hold with the wallet's balance after it (`Ledger.watch_holds`); the watcher keeps
each enabled rule in memory (loaded at start, on a change, and by every sweep) and acts only
when a balance crosses a threshold:

- below, while the rule is armed here: disarm it here and, in the background, `claim` the
  crossing in the database: `UPDATE auto_top_ups SET armed = false, fired_count = fired_count
  + 1 WHERE customer_id = ? AND enabled AND armed`. One statement wins, in any number of
  concurrent calls and processes (the row lock serialises them on PostgreSQL, the one
  connection on SQLite); the winner buys the pack (`top_up`), the crossing's payment keyed by
  `fired_count`, so a retried top-up pays once (Stripe's idempotency key is the payment id).
- at or above while disarmed here: re-arm (`rearm`, conditional too). A successful top-up
  re-arms at once when it brings the wallet back to the threshold.

Another process may learn of a crossing fired elsewhere only when it claims (and loses), and
of a re-arm elsewhere at its next sweep or its own observation: a crossing is never fired
twice, and at worst noticed one sweep late.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tollhouse import money
from tollhouse.catalog import CatalogError
from tollhouse.customers import service as customers
from tollhouse.ledger import HoldView
from tollhouse.ledger import service as ledger_service
from tollhouse.payments.errors import PaymentMethodRequired, PaymentProviderError
from tollhouse.payments.models import AutoTopUp, Payment, PaymentKind, PaymentStatus, Provider
from tollhouse.payments.schemas import AutoTopUpView, PaymentView
from tollhouse.payments.service import records
from tollhouse.payments.service.checkout import mapped_customer as stripe_customer_of
from tollhouse.payments.service.records import Context, Terms
from tollhouse.subscriptions import service as subscriptions

if TYPE_CHECKING:
    from tollhouse.payments.stripe_api import StripeApi

log = logging.getLogger(__name__)


async def get_rule(session: AsyncSession, customer_id: str) -> AutoTopUpView | None:
    """The customer's rule, or None if it never set one."""
    row = await session.get(AutoTopUp, customer_id, populate_existing=True)
    return None if row is None else AutoTopUpView.of(row)


async def enabled_rules(session: AsyncSession) -> list[AutoTopUpView]:
    """Every enabled rule."""
    rows = await session.scalars(select(AutoTopUp).where(AutoTopUp.enabled.is_(True)))
    return [AutoTopUpView.of(row) for row in rows]


async def configure(
    ctx: Context,
    customer_id: str,
    *,
    enabled: bool,
    threshold_micros: int,
    pack: str,
) -> AutoTopUpView:
    """Set the customer's rule. Enabling (or changing) it arms it: the next debit below the
    threshold buys `pack`. Enabling needs a card saved with Stripe (a completed checkout).

    Raises:
        CustomerNotFound: no such customer.
        CreditPackNotFound: unknown pack.
        PaymentMethodRequired: enabling without a card saved with Stripe.
    """
    ctx.catalog.credit_pack(pack)
    now = ctx.clock.now()
    async with ctx.db.transaction() as session:
        await customers.get(session, customer_id)
        if enabled:
            await _require_saved_card(session, customer_id, pack)
        row = await session.get(AutoTopUp, customer_id, with_for_update=True)
        if row is None:
            row = AutoTopUp(customer_id=customer_id, fired_count=0, created_at=now)
            session.add(row)
        row.enabled = enabled
        row.threshold_micros = threshold_micros
        row.pack = pack
        row.armed = True
        row.last_error = None
        row.updated_at = now
        await session.flush()
        return AutoTopUpView.of(row)


async def _require_saved_card(session: AsyncSession, customer_id: str, pack: str) -> None:
    sub = await subscriptions.get_subscription(session, customer_id)
    if sub.has_payment_method and await stripe_customer_of(session, customer_id) is not None:
        return
    raise PaymentMethodRequired(
        "auto top-up charges a card saved with Stripe: complete a checkout first "
        "(POST /v1/checkout)",
        pack=pack,
    )


async def claim(ctx: Context, customer_id: str) -> int | None:
    """Take the current crossing: the n-th crossing's number, or None when the rule is not
    armed (another call or process took it, or it is disabled)."""
    async with ctx.db.transaction() as session:
        now = ctx.clock.now()
        taken = await session.execute(
            update(AutoTopUp)
            .where(
                AutoTopUp.customer_id == customer_id,
                AutoTopUp.enabled.is_(True),
                AutoTopUp.armed.is_(True),
            )
            .values(
                armed=False,
                fired_count=AutoTopUp.fired_count + 1,
                last_fired_at=now,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(taken, "rowcount", 0) != 1:
            return None
        return await session.scalar(
            select(AutoTopUp.fired_count).where(AutoTopUp.customer_id == customer_id)
        )


async def rearm(ctx: Context, customer_id: str) -> bool:
    """Arm the rule again (the balance is back at its threshold). True if it was disarmed."""
    async with ctx.db.transaction() as session:
        done = await session.execute(
            update(AutoTopUp)
            .where(
                AutoTopUp.customer_id == customer_id,
                AutoTopUp.enabled.is_(True),
                AutoTopUp.armed.is_(False),
            )
            .values(armed=True, updated_at=ctx.clock.now())
            .execution_options(synchronize_session=False)
        )
        return getattr(done, "rowcount", 0) == 1


async def available(ctx: Context, customer_id: str) -> int:
    """The wallet's available micros now."""
    async with ctx.db.transaction() as session:
        wallet = await ledger_service.balance(
            session, customer_id, ctx.catalog.currency, now=ctx.clock.now()
        )
    return wallet.available_micros


async def top_up(ctx: Context, api: StripeApi, customer_id: str, crossing: int) -> PaymentView:
    """Buy the rule's pack for the `crossing`-th crossing: a payment keyed by it, charged
    off-session on the customer's saved card, posted when Stripe answers `succeeded` (else
    when `payment_intent.succeeded` arrives), failed (`payment.failed`) on a decline.

    Raises:
        CreditPackNotFound: the rule's pack left the catalog (recorded as its last error).
    """
    async with ctx.db.transaction() as session:
        rule = await get_rule(session, customer_id)
        stripe_customer = await stripe_customer_of(session, customer_id)
    assert rule is not None
    try:
        pack = ctx.catalog.credit_pack(rule.pack)
    except CatalogError as error:
        await _note(ctx, customer_id, None, error.detail)
        raise
    payment, _ = await records.open_payment(
        ctx,
        Terms(
            customer_id=customer_id,
            provider=Provider.STRIPE.value,
            provider_ref=f"auto-top-up:{customer_id}:{crossing}",
            kind=PaymentKind.AUTO_TOP_UP,
            amount_micros=pack.price_micros,
            currency=ctx.catalog.currency,
            paid_at=ctx.clock.now(),
            item=pack.name,
            credits_micros=pack.credits_micros,
            bonus_micros=pack.bonus_micros,
            bonus_expiry_days=pack.bonus_expiry_days,
            description=f"auto top-up #{crossing} below {rule.threshold_micros} micros",
        ),
    )
    if payment.status != PaymentStatus.PENDING:
        return payment
    card = await api.saved_card(stripe_customer) if stripe_customer else None
    if stripe_customer is None or card is None:
        failed = await records.fail(ctx, payment.id, "no card saved with Stripe")
        await _note(ctx, customer_id, payment.id, failed.failure_reason)
        return failed
    try:
        charge = await api.charge_off_session(
            stripe_customer=stripe_customer,
            payment_method=card,
            amount=money.to_minor_units(pack.price_micros, ctx.catalog.currency),
            currency=ctx.catalog.currency,
            description=payment.description,
            metadata={"tollhouse_payment": payment.id, "tollhouse_customer": customer_id},
            idempotency_key=f"tollhouse-{payment.id}",
        )
    except PaymentProviderError as error:
        # Unknown outcome: the payment stays pending (payment_intent.succeeded may post it).
        await _note(ctx, customer_id, payment.id, error.detail)
        return payment
    async with ctx.db.transaction() as session:
        await session.execute(
            update(Payment)
            .where(Payment.id == payment.id)
            .values(payment_intent_id=charge.payment_intent_id)
        )
    if charge.status == "succeeded":
        done = await records.complete(ctx, payment.id, await records.post_credits(ctx, payment))
        await _note(ctx, customer_id, payment.id, None)
        return done
    if charge.status == "processing":
        await _note(ctx, customer_id, payment.id, None)
        return payment
    reason = charge.failure or f"the payment needs the customer ({charge.status})"
    failed = await records.fail(ctx, payment.id, reason)
    await _note(ctx, customer_id, payment.id, reason)
    return failed


async def _note(ctx: Context, customer_id: str, payment_id: str | None, error: str | None) -> None:
    async with ctx.db.transaction() as session:
        await session.execute(
            update(AutoTopUp)
            .where(AutoTopUp.customer_id == customer_id)
            .values(
                last_payment_id=payment_id,
                last_error=None if error is None else error[:500],
                updated_at=ctx.clock.now(),
            )
        )


@dataclass(slots=True)
class _Rule:
    threshold_micros: int
    armed: bool


class TopUpWatcher:
    """The in-memory side of auto top-up: `observe` is the ledger's hold listener.

    `fire(customer_id)` and `rearm(customer_id)` are started in the background (`spawn`)
    on a downward crossing and on a return above the threshold.
    """

    def __init__(
        self,
        *,
        on_crossing: Callable[[str], object],
        on_recovery: Callable[[str], object],
    ) -> None:
        self._rules: dict[str, _Rule] = {}
        self._on_crossing = on_crossing
        self._on_recovery = on_recovery

    def load(self, rules: list[AutoTopUpView]) -> None:
        """Replace the rules with the enabled ones of the database (their `armed` state)."""
        self._rules = {
            rule.customer_id: _Rule(rule.threshold_micros, rule.armed)
            for rule in rules
            if rule.enabled
        }

    def set(self, rule: AutoTopUpView) -> None:
        """Take one customer's rule as it is now (or drop it, disabled)."""
        if rule.enabled:
            self._rules[rule.customer_id] = _Rule(rule.threshold_micros, rule.armed)
        else:
            self._rules.pop(rule.customer_id, None)

    def observe(self, hold: HoldView) -> None:
        """The ledger's hold listener: one dict lookup for a customer without a rule."""
        rule = self._rules.get(hold.customer_id)
        balance = hold.available_after_micros
        if rule is None or balance is None:
            return
        if balance < rule.threshold_micros:
            if rule.armed:
                rule.armed = False
                self._on_crossing(hold.customer_id)
        elif not rule.armed:
            rule.armed = True
            self._on_recovery(hold.customer_id)

    def has_rule(self, customer_id: str) -> bool:
        """True when the customer has an enabled rule here."""
        return customer_id in self._rules

    def recovered(self, customer_id: str, balance_micros: int) -> bool:
        """After credits arrived: True (and armed here) when `balance_micros` is back at the
        threshold of a disarmed rule; the caller re-arms it in the database."""
        rule = self._rules.get(customer_id)
        if rule is None or rule.armed or balance_micros < rule.threshold_micros:
            return False
        rule.armed = True
        return True

    def disarmed(self, customer_id: str) -> None:
        """Another process took the crossing (the claim found the rule disarmed)."""
        rule = self._rules.get(customer_id)
        if rule is not None:
            rule.armed = False
