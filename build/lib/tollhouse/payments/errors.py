"""Payments errors.

```
TollhouseError
└── PaymentsError (500 payments-error)
    ├── PaymentsNotConfigured (503 payments-not-configured)  missing: the unset variables
    ├── PaymentMethodRequired (402 payment-method-required)  plan | pack
    ├── PaymentNotFound (404 payment-not-found)              also a NotFound; payment_id
    ├── CheckoutNotFound (404 checkout-not-found)            also a NotFound; checkout_id
    ├── PaymentNotRefundable (409 payment-not-refundable)    also a Conflict; payment_id,
    │                                                        payment_status, provider
    ├── WebhookSignatureInvalid (400 webhook-signature-invalid)  also a BadRequest
    └── PaymentProviderError (502 payment-provider-error)    provider, provider_code
```
An unknown pack is the catalog's `CreditPackNotFound` (404); an unknown plan `PlanNotFound`.
"""

from __future__ import annotations

from tollhouse.errors import BadRequest, Conflict, NotFound, TollhouseError


class PaymentsError(TollhouseError):
    """Base of the payments domain's errors."""

    status, code, title = 500, "payments-error", "Payments error"


class PaymentsNotConfigured(PaymentsError):
    """A Stripe route or operation without Stripe's settings. Extra: `missing` (the
    environment variables to set)."""

    status, code, title = 503, "payments-not-configured", "Payments are not configured"


class PaymentMethodRequired(PaymentsError):
    """A paid plan (or auto top-up) needs a payment method on file: a card saved through a
    Stripe checkout, or one an operator recorded (manual billing). Extra: `plan` or `pack`."""

    status, code, title = 402, "payment-method-required", "Payment method required"


class PaymentNotFound(NotFound, PaymentsError):
    """No such payment (or another customer's). Extra: `payment_id`."""

    status, code, title = 404, "payment-not-found", "Payment not found"


class CheckoutNotFound(NotFound, PaymentsError):
    """No such checkout (or another customer's). Extra: `checkout_id`."""

    status, code, title = 404, "checkout-not-found", "Checkout not found"


class PaymentNotRefundable(Conflict, PaymentsError):
    """The payment cannot be refunded here: not succeeded, already fully refunded, or a
    Stripe payment (refund it in Stripe; its `charge.refunded` event takes the credits back).
    Extra: `payment_id`, `payment_status`, `provider`."""

    status, code, title = 409, "payment-not-refundable", "Payment not refundable"


class WebhookSignatureInvalid(BadRequest, PaymentsError):
    """A webhook whose `Stripe-Signature` is missing, forged, or older than the tolerance
    (a replay), or whose body is not an event. Nothing was processed."""

    status, code, title = 400, "webhook-signature-invalid", "Webhook signature invalid"


class PaymentProviderError(PaymentsError):
    """The payment provider refused or could not be reached; nothing was charged by this
    call. Extra: `provider`, `provider_code` (Stripe's error code, if any)."""

    status, code, title = 502, "payment-provider-error", "Payment provider error"
