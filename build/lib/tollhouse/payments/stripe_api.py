"""Stripe through its official library: the webhook signature check and the few API calls
tollhouse makes (customers, Checkout Sessions, saved cards, off-session payments).

Every call goes through one `stripe.StripeClient` on the library's aiohttp client, to
`TOLLHOUSE_STRIPE_API_BASE` when set (a local server speaking Stripe's API in tests). Every
POST carries an idempotency key derived from a tollhouse id, so a retried call makes one
object (docs.stripe.com/api/idempotent_requests).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import stripe
from stripe.params import CustomerCreateParams, PaymentIntentCreateParams
from stripe.params.checkout import SessionCreateParams

from tollhouse.payments.errors import PaymentProviderError, WebhookSignatureInvalid
from tollhouse.payments.settings import StripeSettings

log = logging.getLogger(__name__)

NETWORK_RETRIES = 2
"""Retries of a call that failed on the network (the library reuses its idempotency key)."""


def verify_event(payload: bytes, signature: str | None, settings: StripeSettings) -> stripe.Event:
    """The event `payload` carries, once its `Stripe-Signature` header is checked with
    Stripe's library: an HMAC-SHA256 of `"{t}.{payload}"` under the webhook secret, signed at
    most `tolerance_seconds` ago (docs.stripe.com/webhooks#verify-events). The tolerance is
    on the wall clock, where Stripe signs.

    Raises:
        WebhookSignatureInvalid: no header, a forged or malformed one, a stale timestamp (a
            replay), or a body that is not a JSON event.
    """
    try:
        event: stripe.Event = stripe.Webhook.construct_event(
            payload, signature, settings.webhook_secret, settings.tolerance_seconds
        )
    except stripe.SignatureVerificationError as error:
        raise WebhookSignatureInvalid(f"Stripe-Signature refused: {error.user_message}") from None
    except (ValueError, UnicodeDecodeError):
        raise WebhookSignatureInvalid("the body is not a Stripe event") from None
    return event


@dataclass(frozen=True, slots=True)
class Charge:
    """The outcome of an off-session charge."""

    payment_intent_id: str | None
    status: str
    """Stripe's PaymentIntent status (`succeeded`, `processing`, `requires_action`, ...), or
    `failed` when Stripe declined it."""
    failure: str | None = None
    """Why it was declined (Stripe's message and code)."""


class StripeApi:
    """The Stripe calls tollhouse makes. Start nothing; `close()` frees the HTTP client."""

    def __init__(self, settings: StripeSettings) -> None:
        self.settings = settings
        self._http = stripe.AIOHTTPClient()
        self._client = stripe.StripeClient(
            settings.api_key,
            base_addresses={"api": settings.api_base} if settings.api_base else None,
            http_client=self._http,
            max_network_retries=NETWORK_RETRIES,
        )

    async def close(self) -> None:
        """Close the HTTP client's connections."""
        await self._http.close_async()  # type: ignore[no-untyped-call]

    async def create_customer(
        self, *, customer_id: str, name: str, email: str | None, idempotency_key: str
    ) -> str:
        """A new Stripe customer for a tollhouse customer; returns its id (`cus_...`).

        Raises:
            PaymentProviderError: Stripe refused or could not be reached.
        """
        params: CustomerCreateParams = {
            "name": name,
            "metadata": {"tollhouse_customer": customer_id},
        }
        if email:
            params["email"] = email
        try:
            created = await self._client.v1.customers.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as error:
            raise _provider_error("creating a customer", error) from None
        return str(created.id)

    async def create_checkout_session(
        self, params: SessionCreateParams, *, idempotency_key: str
    ) -> dict[str, Any]:
        """A new Checkout Session; returns the session object (`id`, `url`, `expires_at`).

        Raises:
            PaymentProviderError: Stripe refused or could not be reached.
        """
        try:
            session = await self._client.v1.checkout.sessions.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        except stripe.StripeError as error:
            raise _provider_error("creating a Checkout Session", error) from None
        return session.to_dict()

    async def saved_card(self, stripe_customer: str) -> str | None:
        """The customer's most recently saved card (`pm_...`), or None.

        Raises:
            PaymentProviderError: Stripe refused or could not be reached.
        """
        try:
            cards = await self._client.v1.payment_methods.list_async(
                {"customer": stripe_customer, "type": "card", "limit": 1}
            )
        except stripe.StripeError as error:
            raise _provider_error("listing saved cards", error) from None
        return str(cards.data[0].id) if cards.data else None

    async def charge_off_session(
        self,
        *,
        stripe_customer: str,
        payment_method: str,
        amount: int,
        currency: str,
        description: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> Charge:
        """Charge a saved card while the customer is away: a PaymentIntent with
        `off_session=true, confirm=true` (docs.stripe.com/payments/save-and-reuse). `amount`
        is in the currency's minor unit. A decline is a `Charge` with status `failed`.

        Raises:
            PaymentProviderError: Stripe refused the call itself or could not be reached.
        """
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency,
            "customer": stripe_customer,
            "payment_method": payment_method,
            "off_session": True,
            "confirm": True,
            "description": description,
            "metadata": metadata,
        }
        try:
            intent = await self._client.v1.payment_intents.create_async(
                params, {"idempotency_key": idempotency_key}
            )
        except stripe.CardError as error:
            json_body: Any = error.json_body
            body: dict[str, Any] = (json_body or {}).get("error") or {}
            declined: dict[str, Any] = body.get("payment_intent") or {}
            reason = f"{error.user_message} ({error.code})" if error.code else error.user_message
            return Charge(declined.get("id"), "failed", str(reason))
        except stripe.StripeError as error:
            raise _provider_error("charging a saved card", error) from None
        return Charge(str(intent.id), str(intent.status))


def _provider_error(doing: str, error: stripe.StripeError) -> PaymentProviderError:
    log.warning("Stripe failed %s: %r", doing, error)
    return PaymentProviderError(
        f"Stripe failed {doing}: {error.user_message or type(error).__name__}",
        provider="stripe",
        provider_code=error.code,
    )
