"""Models of `client.credit_alerts`'s answers and requests.

Written by `python -m tollhouse.sdk.codegen`; do not edit."""

from __future__ import annotations

from datetime import datetime

from tollhouse.sdk.models._model import Model


class CreditAlert(Model):
    """Answered by `GET /v1/customers/{customer_id}/credit-alerts`."""

    customer_id: str
    threshold_micros: int | None
    threshold_percent: int | None
    effective_threshold_micros: int
    """The threshold in micros now (a percent of the latest grant, rounded down)."""
    state: str
    """`armed` (above it), `low` (below it) or `depleted` (at zero)."""
    changed_at: datetime
