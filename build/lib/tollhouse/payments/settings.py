"""Stripe's settings, from the environment (`TOLLHOUSE_STRIPE_*`). Importing this does not
import the `stripe` library (about half a second): only a process with Stripe configured
does, when it builds its client (`stripe_api`)."""

from __future__ import annotations

from dataclasses import dataclass

from tollhouse.config import Settings
from tollhouse.payments.errors import PaymentsNotConfigured

API_KEY_VARIABLE = "TOLLHOUSE_STRIPE_API_KEY"
WEBHOOK_SECRET_VARIABLE = "TOLLHOUSE_STRIPE_WEBHOOK_SECRET"


@dataclass(frozen=True, slots=True)
class StripeSettings:
    """What tollhouse needs to use Stripe."""

    api_key: str
    webhook_secret: str
    api_base: str | None = None
    """None = Stripe's own API."""
    tolerance_seconds: int = 300
    """Oldest accepted signature timestamp (`Stripe-Signature: t=...`), in seconds."""

    @staticmethod
    def from_settings(settings: Settings) -> StripeSettings:
        """Stripe's settings from the environment's.

        Raises:
            PaymentsNotConfigured: the API key or the webhook secret is unset (`missing`
                names the variables).
        """
        key = settings.stripe_api_key.get_secret_value() if settings.stripe_api_key else ""
        secret = settings.stripe_webhook_secret
        webhook_secret = secret.get_secret_value() if secret else ""
        missing = [
            name
            for name, value in ((API_KEY_VARIABLE, key), (WEBHOOK_SECRET_VARIABLE, webhook_secret))
            if not value
        ]
        if missing:
            raise PaymentsNotConfigured(
                "Stripe is not configured: set " + " and ".join(missing), missing=missing
            )
        return StripeSettings(
            api_key=key,
            webhook_secret=webhook_secret,
            api_base=settings.stripe_api_base,
            tolerance_seconds=settings.stripe_webhook_tolerance_seconds,
        )
