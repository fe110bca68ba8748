"""Payments: money in from a payment provider (Stripe) or recorded by an operator
(`manual`), turned into credits, session packs and plan subscriptions.

```python
from tollhouse.payments import Payments

payments = Payments.from_settings(settings, db, ledger, catalog=catalog, clock=clock)
await payments.start()
ledger.watch_holds(payments.observe)       # auto top-up sees every debit
paid = await payments.record_manual("cus_...", pack="pack-50", idempotency_key="wire-118")
# paid.credits_micros == 50_000_000 (a paid grant), paid.bonus_micros == 5_000_000 (expiring)
```

Invariants:
- A payment is one `payments` row per provider and provider reference (a Checkout Session,
  a PaymentIntent, an invoice, the operator's key): every delivery, retry and replay of one
  payment finds the same row.
- A payment's credits are its own ledger transfer, payments -> a lot (kind `payment`, never
  expiring, priority `PURCHASED_PRIORITY`); its bonus a second grant, issuance -> a lot that
  may expire `bonus_expiry_days` after the payment. Both are keyed by the payment's id, so
  they are posted once, whatever the deliveries.
- A Stripe event is processed once: its id is inserted (unique) in the transaction that
  records its effect, before the effect; a concurrent duplicate waits on that key and rolls
  back. Ledger writes (on the writer's own connection) come before that transaction, keyed
  as above, so a crash in between is finished by the next delivery without doubling.
- Out-of-order subscription events: the last applied event's time is kept per Stripe
  subscription; an older event changes nothing.
- A refund reverses, never deletes: the refunded share of the credits and bonus goes back
  to the accounts that funded them, as far as the wallet still holds them; the rest is
  recorded as `unrecovered_micros` (the wallet never goes below zero for a refund).
- Auto top-up fires at most once per crossing of the threshold, in any number of concurrent
  calls and processes (a conditional update of the rule's `armed` flag).
- `payment.succeeded`, `payment.failed`, `payment.refunded` and `subscription.updated` are
  emitted in the transaction of the change they describe.

Imports: ground, `catalog`, `customers`, `ledger`, `subscriptions`, `sessions`, `events`,
and the official `stripe` library. Edges (API, CLI) reach it through `Payments` and
`payments.service`.
"""

from tollhouse.payments.errors import (
    CheckoutNotFound,
    PaymentMethodRequired,
    PaymentNotFound,
    PaymentNotRefundable,
    PaymentProviderError,
    PaymentsError,
    PaymentsNotConfigured,
    WebhookSignatureInvalid,
)
from tollhouse.payments.models import CheckoutStatus, PaymentKind, PaymentStatus, Provider
from tollhouse.payments.payments import Payments
from tollhouse.payments.schemas import (
    AutoTopUpView,
    CheckoutView,
    PaymentView,
    RefundView,
    WebhookOutcome,
)
from tollhouse.payments.settings import StripeSettings

__all__ = [
    "AutoTopUpView",
    "CheckoutNotFound",
    "CheckoutStatus",
    "CheckoutView",
    "PaymentKind",
    "PaymentMethodRequired",
    "PaymentNotFound",
    "PaymentNotRefundable",
    "PaymentProviderError",
    "PaymentStatus",
    "PaymentView",
    "Payments",
    "PaymentsError",
    "PaymentsNotConfigured",
    "Provider",
    "RefundView",
    "StripeSettings",
    "WebhookOutcome",
    "WebhookSignatureInvalid",
]
